"""column_file.py: the on-disk CSC copy holds exactly the input's values, over shapes and block sizes,
and answers every selection cellxgene makes (genes, cells, both) as scipy would."""

from __future__ import annotations

import itertools
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from galaxy_cellxgene import column_file, columns, distribution, row_file
from galaxy_cellxgene.store_choice import StoreChoice
from hypothesis import given
from hypothesis import strategies as st
from support.h5ad_builders import write_matrix_h5ad

_names = itertools.count()


def write_h5ad(directory: Path, X) -> Path:
    return write_matrix_h5ad(directory / f"x{next(_names)}.h5ad", X)


@st.composite
def sparse_matrices(draw, max_rows: int = 60, max_cols: int = 14):
    n_rows = draw(st.integers(1, max_rows))
    n_cols = draw(st.integers(1, max_cols))
    density = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(n_rows, n_cols)).astype(dtype) * (rng.random((n_rows, n_cols)) < density)
    if draw(st.booleans()) and n_rows > 2:
        dense[n_rows // 2, :] = np.arange(1, n_cols + 1)  # one full row: a block of a single row
    matrix = sp.csr_matrix(dense)
    matrix.eliminate_zeros()
    return matrix


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("column_file")


@given(X=sparse_matrices(), nnz_per_block=st.integers(1, 80))
def test_the_file_holds_exactly_the_input_values(scratch, X, nnz_per_block) -> None:
    source = write_h5ad(scratch, X)
    target = source.with_suffix(column_file.SUFFIX)
    report = column_file.build_column_file(source, target, nnz_per_block=nnz_per_block)
    expected = X.tocsc()
    expected.sort_indices()
    with h5py.File(target, "r") as f:
        assert f.attrs["encoding-type"] == "csc_matrix"
        assert tuple(f.attrs["shape"]) == X.shape
        np.testing.assert_array_equal(f["indptr"][()], expected.indptr)
        np.testing.assert_array_equal(f["indices"][()], expected.indices)
        np.testing.assert_array_equal(f["data"][()], expected.data)  # bit for bit, same dtype
        assert f["data"].dtype == X.dtype
        # anndata reads it as the same matrix: the file is its own encoding, not a format of ours
        np.testing.assert_array_equal(ad.io.read_elem(f["/"]).toarray(), X.toarray())
    assert report.nnz == X.nnz and report.bytes == target.stat().st_size
    assert report.value_range == ((float(X.data.min()), float(X.data.max())) if X.nnz else None)
    assert not list(scratch.glob(".*")), "spill files are removed"


@given(
    X=sparse_matrices(),
    nnz_per_block=st.integers(1, 80),
    genes=st.lists(st.integers(0, 13), max_size=20),
    cells=st.one_of(st.none(), st.lists(st.integers(0, 59), max_size=60)),
    as_mask=st.booleans(),
)
def test_any_selection_matches_scipy(scratch, X, nnz_per_block, genes, cells, as_mask) -> None:
    n_rows, n_cols = X.shape
    source = write_h5ad(scratch, X)
    target = source.with_suffix(column_file.SUFFIX)
    column_file.build_column_file(source, target, nnz_per_block=nnz_per_block)
    store = column_file.ColumnFile(target, row_file=row_file.RowFile(source))
    assert store._fd is not None or X.nnz == 0  # the file we write is read with positional reads
    try:
        var = np.zeros(n_cols, bool)
        var[[g for g in genes if g < n_cols]] = True
        obs = None
        if cells is not None:
            obs = np.zeros(n_rows, bool)
            obs[[c for c in cells if c < n_rows]] = True
        got = store.select(
            None if obs is None else (obs if as_mask else np.flatnonzero(obs)), var if as_mask else np.flatnonzero(var)
        )
        expected = X[:, var] if obs is None else X[obs, :][:, var]
        assert got.shape == expected.shape and got.dtype == X.dtype
        np.testing.assert_array_equal(got.toarray(), expected.toarray())
        if obs is not None:  # cells and every gene: differential expression, from the row-major input
            np.testing.assert_array_equal(store.select(obs, None).toarray(), X[obs, :].toarray())
    finally:
        store.close()


def test_genes_in_any_order_and_repeated(scratch) -> None:
    X = sp.random(40, 9, density=0.4, format="csr", dtype=np.float32, random_state=np.random.default_rng(4))
    source = write_h5ad(scratch, X)
    target = source.with_suffix(column_file.SUFFIX)
    column_file.build_column_file(source, target, nnz_per_block=5)
    store = column_file.ColumnFile(target)
    cols = np.array([7, 2, 3, 4, 4, 0, 8])
    np.testing.assert_array_equal(store.select(None, cols).toarray(), X[:, cols].toarray())
    gene = store.select(None, np.array([3]))
    assert gene.format == "csc" and gene.has_sorted_indices


@given(rows=st.lists(st.integers(0, 299), max_size=80), gap=st.sampled_from([0, 3, 1 << 16]))
def test_row_reads_return_the_cells_asked_for_in_their_order(scratch, rows, gap) -> None:
    X = sp.random(300, 11, density=0.2, format="csr", dtype=np.float32, random_state=np.random.default_rng(8))
    source = scratch / "rows.h5ad"
    if not source.exists():
        ad.AnnData(X).write_h5ad(source)
    reader = row_file.RowFile(source)
    old, row_file.GAP_NNZ = row_file.GAP_NNZ, gap
    try:
        got = reader.rows(np.array(rows, dtype=np.int64))
    finally:
        row_file.GAP_NNZ = old
        reader.close()
    np.testing.assert_array_equal(got.toarray(), X[rows, :].toarray())


@pytest.mark.parametrize("compression", [None, "gzip"])  # anndata writes both chunked: read through h5py
def test_column_major_input_is_read_in_place(scratch, compression) -> None:
    X = sp.random(70, 12, density=0.3, format="csc", dtype=np.float32, random_state=np.random.default_rng(2))
    source = scratch / f"csc_{compression}.h5ad"
    ad.AnnData(X).write_h5ad(source, compression=compression)
    store = column_file.ColumnFile(source, "X", nnz_per_block=7)
    with h5py.File(source, "r") as f:
        assert (store._fd is None) is (f["X/data"].chunks is not None)
    cells = np.zeros(70, bool)
    cells[[0, 5, 6, 69]] = True
    np.testing.assert_array_equal(store.select(None, np.array([1, 11])).toarray(), X[:, [1, 11]].toarray())
    np.testing.assert_array_equal(store.select(cells, None).toarray(), X[cells, :].toarray())
    assert distribution.from_chunks(store.values()) == distribution.of_matrix(X)


def test_the_distribution_rule_sees_the_same_range_as_on_the_values(scratch) -> None:
    X = sp.csr_matrix(np.array([[0, 1.5, np.inf], [np.nan, 0, 30.0]], dtype=np.float32))
    source = write_h5ad(scratch, X)
    target = source.with_suffix(column_file.SUFFIX)
    report = column_file.build_column_file(source, target)
    assert report.value_range == (1.5, 30.0)  # non-finite values are ignored, as cellxgene does
    store = column_file.ColumnFile(target, value_range=report.value_range)
    assert distribution.from_chunks(store.values()) == distribution.of_matrix(X) == "count"


def test_too_little_disk_says_how_much_and_what_to_do(tmp_path) -> None:
    with pytest.raises(column_file.ColumnFileError) as err:
        column_file.check_disk_space(tmp_path, nnz=10**15, itemsize=4, row_itemsize=4)
    assert "GiB" in str(err.value) and "Fix:" in str(err.value)


def test_a_row_major_input_is_refused_by_the_reader_and_a_dense_one_by_the_builder(scratch) -> None:
    csr = write_h5ad(scratch, sp.random(5, 3, density=0.5, format="csr", dtype=np.float32))
    dense = write_h5ad(scratch, np.ones((5, 3), dtype=np.float32))
    with pytest.raises(column_file.ColumnFileError, match="not a CSC"):
        column_file.ColumnFile(csr, "X")
    with pytest.raises(column_file.ColumnFileError, match="not a CSR"):
        column_file.build_column_file(dense, scratch / "dense.columns.h5")


def test_the_store_builds_on_disk_beside_the_prepared_file_and_answers_cellxgene(scratch) -> None:
    X = sp.random(120, 10, density=0.3, format="csr", dtype=np.float32, random_state=np.random.default_rng(6))
    source = write_h5ad(scratch, X)
    store = columns.ColumnStore(str(source), StoreChoice("disk", "test", build=True))
    store.build()
    assert store.error is None and isinstance(store.matrix, column_file.ColumnFile)
    assert store.store_path == source.with_name(source.stem + column_file.SUFFIX) and store.store_path.exists()
    described = store.describe()
    assert described["kind"] == "disk" and described["disk_bytes"] == store.store_path.stat().st_size
    np.testing.assert_array_equal(store.get_X_array(None, np.array([4])).toarray(), X[:, [4]].toarray())
