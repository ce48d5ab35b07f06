"""The list tool budgets each dataset by the store its session will really use (issue 25, item 4):
a CSR atlas served from a disk store costs its pointers, not its matrix, so it no longer pushes
the other datasets out of memory; one copied into memory costs the copy."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from galaxy_cellxgene.multi.datasets import APP_OVERHEAD_BYTES, read_facts
from galaxy_cellxgene.settings import ViewerOptions
from galaxy_cellxgene.store_choice import StoreChoice, XStorage, copy_bytes, resident_bytes
from support.h5ad_builders import write_matrix_h5ad

LAYOUT = XStorage("csr_matrix", "float32", (1_000_000, 20_000), 800_000_000)


def test_each_store_is_counted_as_what_it_holds_in_memory() -> None:
    assert resident_bytes(LAYOUT, StoreChoice("memory", "")) == copy_bytes(LAYOUT)
    disk = resident_bytes(LAYOUT, StoreChoice("disk", "", build=True))
    assert disk == (20_000 + 1) * 8 + (1_000_000 + 1) * 8  # two pointers: ~8 MiB, not ~6 GiB
    dense = XStorage("array", "float64", (1000, 300), 300_000)
    assert resident_bytes(dense, StoreChoice("cellxgene", "")) == 1000 * 300 * 8


def test_the_list_tool_estimate_follows_the_store_choice(tmp_path) -> None:
    X = sp.random(5000, 200, density=0.2, format="csr", dtype=np.float32, random_state=np.random.default_rng(0))
    path = write_matrix_h5ad(tmp_path / "a.h5ad", X)
    in_memory = read_facts(path, options=ViewerOptions(x_store="memory")).cost_bytes
    on_disk = read_facts(path, options=ViewerOptions(x_store="disk")).cost_bytes
    layout = XStorage("csr_matrix", "float32", X.shape, X.nnz)
    assert in_memory - on_disk == copy_bytes(layout) - (200 + 1) * 8 - (5000 + 1) * 8
    assert on_disk - APP_OVERHEAD_BYTES < X.nnz * 8  # obs, var and pointers: less than the matrix
    # No budget and no choice: the copy in memory, as the viewer does (store_choice.choose_store).
    assert read_facts(path).cost_bytes == in_memory
