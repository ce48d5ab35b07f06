"""distribution.py must give cellxgene's own `auto` answer (normal vs count), only without numba."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from galaxy_cellxgene import distribution
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from server.common.compute.estimate_distribution import estimate_approximate_distribution
from support.h5ad_builders import N_CELLS, build_adata


def cellxgene_says(matrix) -> str:
    return estimate_approximate_distribution(matrix).value


values = st.one_of(
    st.floats(-5, 5, width=32),
    st.floats(0, 1000, width=32),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 24.0, 24.5, -0.5]),
)


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 6)), elements=values), st.booleans())
def test_same_answer_as_cellxgene(matrix: np.ndarray, sparse: bool) -> None:
    x = sp.csr_matrix(matrix) if sparse else matrix
    assert distribution.of_matrix(x) == cellxgene_says(x)


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [
        (np.array([[0, 24]], np.float32), "normal"),  # a range of exactly 24 is still normal
        (np.array([[0, 24.01]], np.float32), "count"),
        (np.array([[np.inf, 1, 2]], np.float32), "normal"),  # non-finite values are ignored
        (np.array([[-np.inf, 30]], np.float32), "normal"),
        (np.array([[np.nan, np.nan]], np.float32), "normal"),
        (np.zeros((0, 3), np.float32), "normal"),
        (np.array([[0, 1000]], np.int32), "count"),
    ],
)
def test_rule_edges(matrix: np.ndarray, expected: str) -> None:
    assert distribution.of_matrix(matrix) == expected
    if matrix.size:
        assert cellxgene_says(matrix) == expected


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize(("scale", "expected"), [(1 / 50, "normal"), (100, "count")])
def test_from_the_file_in_chunks(
    make_h5ad: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, dense: bool, scale: float, expected: str
) -> None:
    adata = build_adata(dense=dense)
    adata.X = adata.X * scale
    path = make_h5ad(adata)
    monkeypatch.setattr(distribution, "CHUNK", 97)  # many chunks, one ragged at the end
    assert distribution.of_file(str(path), "X") == expected
    assert cellxgene_says(ad.read_h5ad(path).X) == expected


def test_from_a_layer(make_h5ad: Callable[..., Path]) -> None:
    adata = build_adata(layers=("counts",))
    adata.X = adata.X / 100
    path = make_h5ad(adata)
    assert distribution.of_file(str(path), "X") == "normal"
    adata.layers["counts"][0, 0] = 1000
    path = make_h5ad(adata)
    assert distribution.of_file(str(path), "layers/counts") == "count"
    assert adata.n_obs == N_CELLS
