"""X as a column-major (CSC) matrix in an HDF5 file: written once, in bounded memory; read per gene.

Why HDF5 through h5py: h5py is already in the runtime (anndata reads h5ad with it), the file is a
plain CSC group in anndata's own encoding (`data`, `indices`, `indptr`, attribute `shape`) that
any HDF5 tool opens, and a gene is two slice reads (`data[lo:hi]`, `indices[lo:hi]`) of one
contiguous dataset each. Zarr or TileDB would add a dependency (TileDB: ~100 MB of wheels) for the
same two reads; a raw memory map would be a format of our own.

Writing from a row-major (CSR) X needs a transpose, which is done in two streaming passes:

1. Row blocks of about `nnz_per_block` non-zeros are read and converted to CSC by scipy; each
   block's values, row numbers and column pointers are appended to three spill files.
2. Column ranges of about `nnz_per_block` non-zeros are assembled from every block's piece
   (one contiguous read per block and range) and written once, in order, to the HDF5 file.

Memory stays at a few blocks whatever the size of X (385 MiB peak RSS for 816 M non-zeros, imports
included); disk use peaks at two copies of X's non-zeros (spill + result), ends at one; writes are sequential.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np
from scipy import sparse

from galaxy_cellxgene.frames import encoding_of
from galaxy_cellxgene.selections import as_indices
from galaxy_cellxgene.sparse_structure import check_block, require_well_formed

NNZ_PER_BLOCK = 1 << 22  # 4 Mi non-zeros: 32 MiB of float32 values and int32 rows per block
SUFFIX = ".columns.h5"


class ColumnFileError(RuntimeError):
    """The column copy cannot be built; the message says why and what to do."""


def row_block_bounds(indptr: np.ndarray, nnz_per_block: int) -> list[int]:
    """Cut points (row numbers, or column numbers for a CSC pointer) into runs of about
    `nnz_per_block` non-zeros, at least one row each."""
    n_rows = len(indptr) - 1
    bounds = [0]
    while bounds[-1] < n_rows:
        start = bounds[-1]
        stop = int(np.searchsorted(indptr, indptr[start] + nnz_per_block, side="right")) - 1
        bounds.append(min(n_rows, max(stop, start + 1)))
    return bounds


def finite_range(values: np.ndarray, low: float, high: float) -> tuple[float, float]:
    if values.size == 0:
        return low, high
    lo, hi = values.min(), values.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return low, high
        lo, hi = finite.min(), finite.max()
    return min(low, float(lo)), max(high, float(hi))


@dataclass(frozen=True)
class BuildReport:
    seconds: float
    bytes: int  # size of the finished file
    nnz: int
    value_range: tuple[float, float] | None  # finite min and max of the values (None: none)


def _row_dtype(n_rows: int) -> np.dtype:
    return np.dtype(np.int32) if n_rows < np.iinfo(np.int32).max else np.dtype(np.int64)


def _pread(fd: int, dtype: np.dtype, start: int, count: int) -> np.ndarray:
    """`count` items of `dtype` from item `start` of a raw spill file."""
    want = count * dtype.itemsize
    buf = bytearray(want)
    view = memoryview(buf)
    got = 0
    while got < want:
        n = os.preadv(fd, [view[got:]], start * dtype.itemsize + got)
        if n <= 0:
            raise ColumnFileError("a spill file of the column copy ended early")
        got += n
    return np.frombuffer(buf, dtype=dtype)


def check_disk_space(directory: Path, nnz: int, itemsize: int, row_itemsize: int) -> None:
    need = 2 * nnz * (itemsize + row_itemsize)
    free = shutil.disk_usage(directory).free
    if free < need:
        raise ColumnFileError(
            f"the column-major copy of X needs {need / 2**30:.1f} GiB of free disk in {directory} while it is "
            f"built, {free / 2**30:.1f} GiB are free. Fix: give the job's working directory more space, or run "
            "with the copy in memory (--x-store memory) if the job has the memory for it."
        )


def build_column_file(
    source: str | Path,
    target: str | Path,
    matrix: str = "X",
    nnz_per_block: int = NNZ_PER_BLOCK,
    progress: Callable[[float], None] | None = None,
) -> BuildReport:
    """Write `source`'s CSR `matrix` as a CSC HDF5 file at `target` (replaced atomically).
    `progress` hears the fraction done (0..1) after each block: the page shows it (finish.js)."""
    told = progress or (lambda fraction: None)
    started = time.monotonic()
    target = Path(target)
    scratch = target.with_name(f".{target.name}.{os.getpid()}")
    spills = [scratch.with_suffix(f".{kind}") for kind in ("values", "rows", "pointers")]
    try:
        with h5py.File(source, "r") as f:
            node = f[matrix]
            if not isinstance(node, h5py.Group) or encoding_of(node) != "csr_matrix":
                raise ColumnFileError(f"{matrix} is not a CSR matrix")
            n_rows, n_cols = (int(s) for s in node.attrs["shape"])
            require_well_formed(node, (n_rows, n_cols))
            indptr = node["indptr"][()].astype(np.int64, copy=False)
            dtype = node["data"].dtype
            row_dtype = _row_dtype(n_rows)
            check_disk_space(target.parent, int(indptr[-1]), dtype.itemsize, row_dtype.itemsize)
            bounds = row_block_bounds(indptr, nnz_per_block) if n_rows else [0]
            colptr, value_range = _spill_blocks(node, indptr, bounds, (n_rows, n_cols), row_dtype, spills, told)
        _gather(scratch, spills, colptr, len(bounds) - 1, (n_rows, n_cols), dtype, row_dtype, nnz_per_block, told)
        os.replace(scratch, target)
    finally:
        for path in (*spills, scratch):
            path.unlink(missing_ok=True)
    return BuildReport(time.monotonic() - started, target.stat().st_size, int(colptr[-1]), value_range)


def _spill_blocks(
    node: h5py.Group,
    indptr: np.ndarray,
    bounds: list[int],
    shape: tuple[int, int],
    row_dtype: np.dtype,
    spills: list[Path],
    told: Callable[[float], None],
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Pass 1 (the first half of the progress): each row block as CSC, appended to the spill files.
    Returns X's column pointer."""
    data, indices = node["data"], node["indices"]
    counts = np.zeros(shape[1], dtype=np.int64)
    low, high = np.inf, -np.inf
    with open(spills[0], "wb") as values_out, open(spills[1], "wb") as rows_out, open(spills[2], "wb") as ptr_out:
        for start, stop in itertools.pairwise(bounds):
            lo, hi = int(indptr[start]), int(indptr[stop])
            check_block(columns := indices[lo:hi], shape[1])  # scipy's tocsc writes where these say
            block = sparse.csr_matrix(
                (data[lo:hi], columns, indptr[start : stop + 1] - lo), shape=(stop - start, shape[1])
            ).tocsc()  # scipy's CSR -> CSC walks rows in order: rows come out sorted in each column
            low, high = finite_range(block.data, low, high)
            block.data.tofile(values_out)
            (block.indices.astype(row_dtype) + row_dtype.type(start)).tofile(rows_out)
            pointer = block.indptr.astype(np.int64)
            pointer.tofile(ptr_out)
            counts += np.diff(pointer)
            told(0.5 * hi / max(1, int(indptr[-1])))
    colptr = np.zeros(shape[1] + 1, dtype=np.int64)
    np.cumsum(counts, out=colptr[1:])
    return colptr, ((low, high) if np.isfinite(low) else None)


def _gather(
    scratch: Path,
    spills: list[Path],
    colptr: np.ndarray,
    n_blocks: int,
    shape: tuple[int, int],
    dtype: np.dtype,
    row_dtype: np.dtype,
    nnz_per_block: int,
    told: Callable[[float], None],
) -> None:
    """Pass 2 (the second half of the progress): column ranges assembled from every block's piece,
    written in order."""
    nnz = int(colptr[-1])
    n_cols = shape[1]
    block_start = np.zeros(n_blocks + 1, dtype=np.int64)  # first value of each block in the spill
    fds = [os.open(p, os.O_RDONLY) for p in spills]
    try:
        for b in range(n_blocks):
            last = _pread(fds[2], np.dtype(np.int64), b * (n_cols + 1) + n_cols, 1)
            block_start[b + 1] = block_start[b] + int(last[0])
        with h5py.File(scratch, "w") as out:
            out.attrs["encoding-type"] = "csc_matrix"
            out.attrs["encoding-version"] = "0.1.0"
            out.attrs["shape"] = np.array(shape, dtype=np.int64)
            out.create_dataset("indptr", data=colptr)
            values = out.create_dataset("data", shape=(nnz,), dtype=dtype)
            rows = out.create_dataset("indices", shape=(nnz,), dtype=row_dtype)
            for c0, c1 in itertools.pairwise(row_block_bounds(colptr, nnz_per_block) if n_cols else [0]):
                first = int(colptr[c0])
                size = int(colptr[c1]) - first
                if size == 0:
                    continue
                value_buf = np.empty(size, dtype=dtype)
                row_buf = np.empty(size, dtype=row_dtype)
                cursor = colptr[c0:c1] - first  # where each column's next piece goes in the buffers
                for b in range(n_blocks):
                    ptr = _pread(fds[2], np.dtype(np.int64), b * (n_cols + 1) + c0, c1 - c0 + 1)
                    a, z = int(ptr[0]), int(ptr[-1])
                    if z == a:
                        continue
                    per_column = np.diff(ptr)
                    # Item k of the piece belongs to column c; it goes to cursor[c] + (k - (ptr[c] - a)).
                    dest = np.repeat(cursor - (ptr[:-1] - a), per_column) + np.arange(z - a)
                    value_buf[dest] = _pread(fds[0], dtype, int(block_start[b]) + a, z - a)
                    row_buf[dest] = _pread(fds[1], row_dtype, int(block_start[b]) + a, z - a)
                    cursor += per_column
                values[first : first + size] = value_buf
                rows[first : first + size] = row_buf
                told(0.5 + 0.5 * (first + size) / nnz)
    finally:
        for fd in fds:
            os.close(fd)


def _contiguous_offset(dataset: h5py.Dataset) -> int | None:
    """Byte offset of a contiguous, unfiltered dataset in its file (None: read it through h5py)."""
    if dataset.chunks is not None or dataset.compression or dataset.external or dataset.is_virtual:
        return None
    if dataset.size == 0:
        return None
    return dataset.id.get_offset()


class RowSource(Protocol):
    """Where cell (row) requests are read (row_file.RowFile: the row-major input itself)."""

    def rows(self, rows: np.ndarray) -> sparse.csr_matrix: ...

    def close(self) -> None: ...


class ColumnFile:
    """Answers cellxgene's get_X_array from a CSC matrix in an HDF5 file: a gene reads only its
    own non-zeros. Cell (row) requests go to `row_file` when given, else scan the columns."""

    def __init__(
        self,
        path: str | Path,
        group: str = "/",
        value_range: tuple[float, float] | None = None,
        row_file: RowSource | None = None,
        nnz_per_block: int = NNZ_PER_BLOCK,
    ) -> None:
        self.path = Path(path)
        self._file = h5py.File(path, "r")
        node = self._file[group]
        if encoding_of(node) != "csc_matrix":
            raise ColumnFileError(f"{group} of {path} is not a CSC matrix")
        self.shape = tuple(int(s) for s in node.attrs["shape"])
        self.indptr = node["indptr"][()].astype(np.int64, copy=False)
        self._data, self._indices = node["data"], node["indices"]
        self.value_range = value_range
        self.row_file = row_file
        self.nnz_per_block = nnz_per_block
        # The file we wrote stores each dataset as one contiguous, unfiltered run of bytes: a gene
        # is then read with one positional read into the answer's own array (no HDF5 selection
        # machinery per click, ~1 ms). Chunked or compressed inputs read in place use h5py.
        offsets = [_contiguous_offset(d) for d in (self._data, self._indices)]
        self._fd = os.open(path, os.O_RDONLY) if None not in offsets else None
        self._offsets = offsets

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    def values(self) -> Iterator[np.ndarray]:
        """What the distribution rule reads: the range seen while building, else the values."""
        if self.value_range is not None:
            yield np.array(self.value_range, dtype=np.float64)
            return
        nnz = int(self.indptr[-1])
        for lo in range(0, nnz, self.nnz_per_block):
            yield self._data[lo : min(nnz, lo + self.nnz_per_block)]

    def select(self, obs_mask=None, var_mask=None) -> sparse.spmatrix:
        """X[obs_mask, var_mask] as cellxgene's get_X_array returns it (sparse)."""
        n_rows, n_cols = self.shape
        if var_mask is None:
            rows = np.arange(n_rows) if obs_mask is None else as_indices(obs_mask, n_rows)
            return self._rows(rows)
        matrix = self._columns(as_indices(var_mask, n_cols))
        if obs_mask is not None:
            matrix = matrix[as_indices(obs_mask, n_rows), :]
        return matrix

    def gene(self, col: int) -> tuple[np.ndarray, np.ndarray]:
        """One column's row numbers and values as stored, unchecked: the gene-click layer's read
        (gene_clicks.py checks the rows), without a sparse matrix around them."""
        lo, hi = int(self.indptr[col]), int(self.indptr[col + 1])
        rows, values = np.empty(hi - lo, dtype=self._indices.dtype), np.empty(hi - lo, dtype=self._data.dtype)
        if hi > lo:
            self._read(0, self._data, values, lo, hi, 0)
            self._read(1, self._indices, rows, lo, hi, 0)
        return rows, values

    def _columns(self, cols: np.ndarray) -> sparse.csc_matrix:
        per_column = self.indptr[cols + 1] - self.indptr[cols]
        indptr = np.zeros(len(cols) + 1, dtype=np.int64)
        np.cumsum(per_column, out=indptr[1:])
        data = np.empty(int(indptr[-1]), dtype=self.dtype)
        rows = np.empty(int(indptr[-1]), dtype=self._indices.dtype)
        at = 0
        # Neighbouring genes in request order are one read.
        breaks = np.flatnonzero(np.diff(cols) != 1) + 1
        for first, last in zip(np.concatenate(([0], breaks)), np.concatenate((breaks, [len(cols)])), strict=True):
            if last <= first:
                continue
            lo, hi = int(self.indptr[cols[first]]), int(self.indptr[cols[last - 1] + 1])
            if hi > lo:
                self._read(0, self._data, data, lo, hi, at)
                self._read(1, self._indices, rows, lo, hi, at)
                at += hi - lo
        if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= self.shape[0]):  # scipy trusts them
            raise ColumnFileError(f"{self.path.name}: a column holds a row number outside X's {self.shape[0]:,} rows")
        matrix = sparse.csc_matrix((data, rows, indptr), shape=(self.shape[0], len(cols)))
        matrix.has_sorted_indices = True
        return matrix

    def _read(self, which: int, dataset: h5py.Dataset, out: np.ndarray, lo: int, hi: int, at: int) -> None:
        """dataset[lo:hi] into out[at:]."""
        if self._fd is None:
            dataset.read_direct(out, np.s_[lo:hi], np.s_[at : at + hi - lo])
            return
        target = memoryview(out[at : at + hi - lo]).cast("B")
        start = self._offsets[which] + lo * out.itemsize
        done = 0
        while done < len(target):
            n = os.preadv(self._fd, [target[done:]], start + done)
            if n <= 0:
                raise ColumnFileError(f"{self.path} ended early: was it changed while the viewer ran?")
            done += n

    def _rows(self, rows: np.ndarray) -> sparse.csr_matrix:
        if self.row_file is not None:
            return self.row_file.rows(rows)
        # Column-major input, no row-major copy: scan the columns, keep the selected cells.
        where = np.full(self.shape[0], -1, dtype=np.int64)
        where[rows] = np.arange(rows.size)
        pieces_r, pieces_c, pieces_v = [], [], []
        for c0, c1 in itertools.pairwise(row_block_bounds(self.indptr, self.nnz_per_block)):
            lo, hi = int(self.indptr[c0]), int(self.indptr[c1])
            if hi == lo:
                continue
            at = where[self._indices[lo:hi]]
            keep = at >= 0
            cols = np.repeat(np.arange(c0, c1), np.diff(self.indptr[c0 : c1 + 1]))
            pieces_r.append(at[keep])
            pieces_c.append(cols[keep])
            pieces_v.append(self._data[lo:hi][keep])
        if not pieces_v:
            return sparse.csr_matrix((rows.size, self.shape[1]), dtype=self.dtype)
        coo = sparse.coo_matrix(
            (np.concatenate(pieces_v), (np.concatenate(pieces_r), np.concatenate(pieces_c))),
            shape=(rows.size, self.shape[1]),
        )
        return coo.tocsr()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._file.close()
        if self.row_file is not None:
            self.row_file.close()
