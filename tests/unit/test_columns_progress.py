"""The column store reports how far its build is (the page's notice, finish.js) and its state."""

from __future__ import annotations

import h5py
import numpy as np
import scipy.sparse as sp
from galaxy_cellxgene import columns
from galaxy_cellxgene.column_file import build_column_file
from galaxy_cellxgene.store_choice import StoreChoice
from support.h5ad_builders import write_matrix_h5ad


def csr(seed: int, n_rows: int = 400, n_cols: int = 30) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.random(n_rows, n_cols, density=0.2, format="csr", dtype=np.float32, random_state=rng)


def test_the_disk_build_reports_rising_progress_up_to_done(tmp_path) -> None:
    source = write_matrix_h5ad(tmp_path / "x.h5ad", csr(1))
    heard: list[float] = []
    build_column_file(source, tmp_path / "x.columns.h5", nnz_per_block=97, progress=heard.append)
    assert len(heard) > 4  # one per block of each pass: the page sees it move
    assert heard == sorted(heard)
    assert 0 < heard[0] <= 0.5 and heard[-1] == 1.0


def test_the_memory_build_reports_rising_progress_up_to_done(tmp_path) -> None:
    source = write_matrix_h5ad(tmp_path / "x.h5ad", csr(2))
    heard: list[float] = []
    columns.read_row_blocks(str(source), nnz_per_block=97, progress=heard.append)
    assert len(heard) > 4 and heard == sorted(heard) and heard[-1] == 1.0


def test_state_is_building_then_ready_with_the_progress_done(tmp_path) -> None:
    source = write_matrix_h5ad(tmp_path / "x.h5ad", csr(3))
    store = columns.ColumnStore(
        str(source), StoreChoice("disk", "test", build=True), store_path=tmp_path / "x.columns.h5"
    )
    assert (store.state(), store.progress) == ("building", None)  # not started: nothing known yet
    store.build()
    assert (store.state(), store.progress) == ("ready", 1.0)


def test_a_failed_build_says_failed_and_why(tmp_path) -> None:
    source = write_matrix_h5ad(tmp_path / "x.h5ad", csr(4))
    with h5py.File(source, "r+") as f:
        del f["X/data"]
    store = columns.ColumnStore(str(source))
    store.build()
    assert store.state().startswith("failed: ") and "data" in store.state()
