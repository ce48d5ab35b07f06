"""columns.py must hand cellxgene exactly the values of X, for any selection, from any block layout."""

from __future__ import annotations

import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from galaxy_cellxgene import columns
from galaxy_cellxgene.settings import ViewerOptions
from hypothesis import given
from hypothesis import strategies as st
from support.h5ad_builders import write_matrix_h5ad as write_h5ad


def random_csr(seed: int, n_rows: int, n_cols: int, density: float) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.random(n_rows, n_cols, density=density, format="csr", dtype=np.float32, random_state=rng)


def dense(matrix) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> tuple[sp.csr_matrix, Path]:
    # Rows of very different lengths (an empty row, a full row) test the block cuts.
    X = random_csr(3, 301, 23, 0.15).tolil()
    X[0, :] = 0
    X[150, :] = np.arange(1, 24, dtype=np.float32)
    X = X.tocsr()
    X.eliminate_zeros()
    return X, write_h5ad(tmp_path_factory.mktemp("columns") / "x.h5ad", X)


@pytest.mark.parametrize("nnz_per_block", [1, 7, 64, 10**9])
def test_blocks_hold_the_file_values_exactly(stored, nnz_per_block: int) -> None:
    X, path = stored
    blocks = columns.read_row_blocks(str(path), nnz_per_block=nnz_per_block)
    assert blocks.shape == X.shape
    assert blocks.starts[0] == 0 and blocks.starts[-1] == X.shape[0]
    assert len(blocks.blocks) == len(blocks.starts) - 1
    if nnz_per_block == 1:
        assert len(blocks.blocks) > 100  # one row per block: many blocks really are exercised
    np.testing.assert_array_equal(dense(blocks.select()), X.toarray())
    assert sum(block.nnz for block in blocks.blocks) == X.nnz
    # The range the distribution rule needs, seen while reading: no pass over X of its own.
    assert blocks.value_range == (float(X.data.min()), float(X.data.max()))
    np.testing.assert_array_equal(next(blocks.values()), [X.data.min(), X.data.max()])


@given(
    nnz_per_block=st.integers(1, 400),
    genes=st.lists(st.integers(0, 22), min_size=0, max_size=30),
    cells=st.one_of(st.none(), st.lists(st.booleans(), min_size=301, max_size=301)),
    as_mask=st.booleans(),
)
def test_any_selection_matches_scipy(stored, nnz_per_block, genes, cells, as_mask) -> None:
    X, path = stored
    blocks = columns.read_row_blocks(str(path), nnz_per_block=nnz_per_block)
    var = np.zeros(X.shape[1], bool)
    var[genes] = True
    var_mask = var if as_mask else np.flatnonzero(var)
    obs_mask = None if cells is None else np.array(cells)
    got = blocks.select(obs_mask, var_mask)
    expected = X[:, var]
    if obs_mask is not None:
        expected = expected[obs_mask, :]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(dense(got), expected.toarray())


def test_differential_expression_rows_come_back_in_order(stored) -> None:
    X, path = stored
    blocks = columns.read_row_blocks(str(path), nnz_per_block=20)
    cells = np.zeros(X.shape[0], bool)
    cells[[0, 1, 99, 150, 151, 300]] = True
    got = blocks.select(cells, None)
    np.testing.assert_array_equal(dense(got), X[cells, :].toarray())


def test_many_genes_take_scipys_path_with_the_same_values(tmp_path) -> None:
    X = random_csr(5, 120, columns.MANY_COLUMNS * 2, 0.1)
    blocks = columns.read_row_blocks(str(write_h5ad(tmp_path / "wide.h5ad", X)), nnz_per_block=50)
    genes = np.ones(X.shape[1], bool)
    genes[3] = False
    np.testing.assert_array_equal(dense(blocks.select(None, genes)), X[:, genes].toarray())


def test_a_gene_is_assembled_from_every_block(stored) -> None:
    X, path = stored
    blocks = columns.read_row_blocks(str(path), nnz_per_block=30)
    gene = blocks.select(None, np.array([5]))
    assert gene.format == "csc" and gene.has_sorted_indices
    np.testing.assert_array_equal(gene.indices, X[:, 5].tocsc().indices)
    np.testing.assert_array_equal(gene.data, X[:, 5].tocsc().data)


def test_float64_values_keep_their_type(tmp_path) -> None:
    X = random_csr(9, 50, 6, 0.3).astype(np.float64)
    blocks = columns.read_row_blocks(str(write_h5ad(tmp_path / "f64.h5ad", X)), nnz_per_block=10)
    assert blocks.select(None, np.array([2])).dtype == np.float64


def test_an_empty_matrix_gives_empty_selections(tmp_path) -> None:
    X = sp.csr_matrix((40, 5), dtype=np.float32)
    blocks = columns.read_row_blocks(str(write_h5ad(tmp_path / "empty.h5ad", X)))
    assert blocks.select(None, np.array([1])).nnz == 0
    assert blocks.select(None, np.array([1])).shape == (40, 1)


def test_the_chosen_store_is_started_for_sparse_float_input(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GALAXY_MEMORY_MB", raising=False)
    options = ViewerOptions()
    csr = write_h5ad(tmp_path / "csr.h5ad", random_csr(1, 30, 4, 0.3))
    csc = write_h5ad(tmp_path / "csc.h5ad", random_csr(1, 30, 4, 0.3).tocsc())
    dense_file = write_h5ad(tmp_path / "dense.h5ad", random_csr(1, 30, 4, 0.3).toarray())
    assert columns.matrix_format(csr) == ("csr_matrix", "float32")
    assert columns.start_column_copy(csc, options) is None  # cellxgene holds a CSC X: columns are slices
    assert columns.start_column_copy(dense_file, options) is None
    store = columns.start_column_copy(csr, options)
    assert store is not None and store.ready.wait(30)
    assert store.error is None and isinstance(store.matrix, columns.RowBlocks)
    # The user's backed mode keeps X on disk: the same column file serves it, not cellxgene's row reads.
    for backed_store in (
        columns.start_column_copy(csr, ViewerOptions(backed=True)),
        columns.start_column_copy(csc, ViewerOptions(backed=True)),
    ):
        assert backed_store is not None and backed_store.ready.wait(30)
        assert backed_store.error is None and backed_store.choice.kind == "disk"
        assert backed_store.matrix is not None and not isinstance(backed_store.matrix, columns.RowBlocks)


class FileAdaptor:
    """Stands in for cellxgene's adaptor: only its get_X_array is reached by the store."""

    def __init__(self) -> None:
        self.calls = 0

    def get_X_array(self, obs_mask=None, var_mask=None):
        self.calls += 1
        return "from the file"


def test_requests_wait_for_the_copy_then_never_touch_the_file(stored) -> None:
    X, path = stored
    adaptor = FileAdaptor()
    store = columns.ColumnStore(str(path))
    store.attach(adaptor)
    answers = []
    asking = threading.Thread(target=lambda: answers.append(adaptor.get_X_array(None, np.array([4]))))
    asking.start()
    asking.join(0.2)
    assert asking.is_alive() and not answers  # waiting, not reading the row-major file
    store.build()
    asking.join(10)
    np.testing.assert_array_equal(dense(answers[0]), X[:, [4]].toarray())
    assert adaptor.calls == 0


def test_a_failed_copy_never_reads_all_of_x_from_the_file_and_says_why(tmp_path) -> None:
    """After a failed copy, cellxgene's own reader would read all of X per request (and run scipy on
    a matrix the copy may have refused, issue 22): requests fail with the reason instead."""
    path = tmp_path / "broken.h5ad"
    write_h5ad(path, random_csr(2, 30, 4, 0.3))
    with h5py.File(path, "r+") as f:
        del f["X/indices"]
    adaptor = FileAdaptor()
    store = columns.ColumnStore(str(path))
    store.attach(adaptor)
    store.build()
    assert store.error and "indices" in store.error
    assert store.refusal and store.refusal.startswith("X is not a well-formed CSR sparse matrix")
    with pytest.raises(RuntimeError, match="cannot be read: X is not a well-formed"):
        adaptor.get_X_array(None, np.array([1]))
    assert adaptor.calls == 0
