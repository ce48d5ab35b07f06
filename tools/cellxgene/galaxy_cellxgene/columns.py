"""A column-major copy of X for gene requests, built beside cellxgene's own start-up.

Two stores, one interface (`select`, `values`), chosen by store_choice.py from X's size and the
job's memory: RowBlocks below (all of X in memory, the fastest reads) or a CSC HDF5 file in the
job's working directory (column_file.py: memory that does not grow with X). This module holds the
in-memory store and the ColumnStore that builds either in a thread and answers cellxgene.

Every gene the user clicks is one column of X. cellxgene keeps X row-major (CSR) as stored
in most h5ad files, where slicing one column scans the whole matrix (~9 ms at 100k cells).
We start cellxgene in backed mode (X stays on disk, so its load skips X) and read the file
into row blocks of a few million non-zeros, each converted to CSC by scipy. A gene is then
one short slice per block (~0.1 ms at 500k cells).

Why blocks and not one CSC matrix: merging the blocks into one matrix is a Python loop over
columns x blocks (~1 s at 500k cells) or an index array per non-zero; left as blocks, the
build is just the file read and scipy's conversion, both of which release the GIL, so it
runs on the second core while the main thread imports cellxgene and loads obs. Memory peaks
at one copy of X plus one block, never CSR and CSC side by side.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from scipy import sparse

from galaxy_cellxgene import cellxgene_internals as cx
from galaxy_cellxgene.column_file import SUFFIX, ColumnFile, build_column_file, finite_range, row_block_bounds
from galaxy_cellxgene.frames import encoding_of
from galaxy_cellxgene.joblog import say
from galaxy_cellxgene.row_file import RowFile
from galaxy_cellxgene.selections import as_indices
from galaxy_cellxgene.settings import ViewerOptions
from galaxy_cellxgene.sparse_structure import (
    SparseStructureError,
    check_all_indices,
    check_block,
    require_well_formed,
)
from galaxy_cellxgene.store_cache import StoreCache, cache_key, fingerprint, value_range_of
from galaxy_cellxgene.store_choice import StoreChoice, XStorage, choose_store
from galaxy_cellxgene.x_bounds import XTooLarge, refusal, uns_refusal

NNZ_PER_BLOCK = 1 << 22  # 32 MiB of float32 values and int32 rows in flight per block
MANY_COLUMNS = 64  # above this many genes per request, scipy's stacking beats our loop


@dataclass(frozen=True)
class RowBlocks:
    """X as consecutive row blocks, each stored column-major (CSC)."""

    starts: tuple[int, ...]  # first row of each block, then the number of rows
    blocks: tuple[sparse.csc_matrix, ...]
    shape: tuple[int, int]
    # Finite min and max of the values, seen while reading (None: none): the distribution rule then
    # needs no pass of its own over X, which would share the interpreter with the first clicks.
    value_range: tuple[float, float] | None = None

    @property
    def dtype(self) -> np.dtype:
        return self.blocks[0].dtype if self.blocks else np.dtype(np.float32)

    def values(self) -> Iterator[np.ndarray]:
        """What the distribution rule reads: the range seen while reading, else the stored values."""
        if self.value_range is not None:
            yield np.array(self.value_range, dtype=np.float64)
            return
        for block in self.blocks:
            yield block.data

    def select(self, obs_mask=None, var_mask=None) -> sparse.spmatrix:
        """X[obs_mask, var_mask] as cellxgene's get_X_array returns it (sparse)."""
        n_rows, n_cols = self.shape
        if var_mask is None:
            return self._rows(None if obs_mask is None else as_indices(obs_mask, n_rows))
        matrix = self._columns(as_indices(var_mask, n_cols))
        if obs_mask is not None:
            matrix = matrix[as_indices(obs_mask, n_rows), :]
        return matrix

    def gene(self, col: int) -> tuple[np.ndarray, np.ndarray]:
        """One column's row numbers (in row order) and values: the gene-click layer's read
        (gene_clicks.py), one slice per block, without a sparse matrix around them."""
        rows, values = [], []
        for block, start in zip(self.blocks, self.starts, strict=False):
            lo, hi = block.indptr[col], block.indptr[col + 1]
            if hi > lo:
                rows.append(block.indices[lo:hi] + np.int64(start))  # one pass, widened to int64
                values.append(block.data[lo:hi])
        if not rows:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=self.dtype)
        return np.concatenate(rows), np.concatenate(values)

    def _columns(self, cols: np.ndarray) -> sparse.csc_matrix:
        n_rows = self.shape[0]
        if len(cols) > MANY_COLUMNS or not self.blocks:
            pieces = [block[:, cols] for block in self.blocks] or [sparse.csc_matrix((0, len(cols)))]
            return sparse.vstack(pieces, format="csc", dtype=self.dtype).tocsc()
        # A gene is one run per block, in row order: concatenate the runs, shifting the
        # block-local row numbers. Sizes first, so each output array is allocated once.
        lows = [block.indptr[cols] for block in self.blocks]
        highs = [block.indptr[cols + 1] for block in self.blocks]
        per_column = np.sum([hi - lo for lo, hi in zip(lows, highs, strict=True)], axis=0)
        indptr = np.zeros(len(cols) + 1, dtype=np.int64)
        np.cumsum(per_column, out=indptr[1:])
        data = np.empty(int(indptr[-1]), dtype=self.dtype)
        rows = np.empty(int(indptr[-1]), dtype=np.int32 if n_rows < np.iinfo(np.int32).max else np.int64)
        cursor = indptr[:-1].tolist()
        for block, start, lo, hi in zip(self.blocks, self.starts, lows, highs, strict=False):
            for j, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
                if b > a:
                    at = cursor[j]
                    data[at : at + b - a] = block.data[a:b]
                    np.add(block.indices[a:b], start, out=rows[at : at + b - a], casting="unsafe")
                    cursor[j] = at + b - a
        matrix = sparse.csc_matrix((data, rows, indptr), shape=(n_rows, len(cols)))
        matrix.has_sorted_indices = True
        return matrix

    def _rows(self, rows: np.ndarray | None) -> sparse.csr_matrix:
        # Differential expression asks for some cells and every gene: each block gives its
        # cells as CSR, which scipy stacks without a detour through COO.
        pieces = []
        for block, start, stop in zip(self.blocks, self.starts, self.starts[1:], strict=False):
            if rows is None:
                pieces.append(block.tocsr())
                continue
            local = rows[(rows >= start) & (rows < stop)] - start
            if local.size:
                pieces.append(block[local, :].tocsr())
        if not pieces:
            return sparse.csr_matrix((0, self.shape[1]), dtype=self.dtype)
        return sparse.vstack(pieces, format="csr")


def read_row_blocks(
    path: str,
    matrix: str = "X",
    nnz_per_block: int = NNZ_PER_BLOCK,
    progress: Callable[[float], None] | None = None,
) -> RowBlocks:
    """A CSR matrix of an h5ad file as RowBlocks (the file's values, unchanged); `progress` hears
    the fraction read after each block."""
    with h5py.File(path, "r") as f:
        node = f[matrix]
        if not isinstance(node, h5py.Group) or encoding_of(node) != "csr_matrix":
            raise ValueError(f"{matrix} is not a CSR matrix")
        shape = tuple(int(s) for s in node.attrs["shape"])
        require_well_formed(node, shape)
        indptr = node["indptr"][()].astype(np.int64, copy=False)
        indices, values = node["indices"], node["data"]
        bounds = row_block_bounds(indptr, nnz_per_block) if shape[0] else [0]
        blocks = []
        low, high = np.inf, -np.inf
        for start, stop in itertools.pairwise(bounds):
            lo, hi = int(indptr[start]), int(indptr[stop])
            columns = indices[lo:hi]
            check_block(columns, shape[1])  # before scipy's tocsc writes where these numbers say
            block = sparse.csr_matrix(
                (values[lo:hi], columns, indptr[start : stop + 1] - lo), shape=(stop - start, shape[1])
            ).tocsc()
            block.has_sorted_indices = True  # scipy's CSR -> CSC walks rows in order
            blocks.append(block)
            low, high = finite_range(block.data, low, high)
            if progress is not None:
                progress(hi / max(1, int(indptr[-1])))
    return RowBlocks(tuple(bounds), tuple(blocks), shape, (low, high) if np.isfinite(low) else None)


class ColumnStore:
    """Builds the chosen column store in a thread and answers cellxgene's get_X_array from it
    once built: RowBlocks in memory, or a ColumnFile on disk (column_file.py)."""

    def __init__(
        self,
        path: str,
        choice: StoreChoice | None = None,
        store_path: Path | None = None,
        cache: StoreCache | None = None,
        key: str | None = None,
    ) -> None:
        self.path = path
        self.cache = cache if key else None  # store_cache.py: shared only under a Galaxy dataset UUID
        self.key = key
        self.choice = choice or StoreChoice("memory", "in memory")
        self.store_path = store_path or Path(path).with_name(Path(path).stem + SUFFIX)
        self.matrix: RowBlocks | ColumnFile | None = None
        self.ready = threading.Event()
        self.error: str | None = None
        self.seconds: float | None = None
        self.store_bytes = 0  # disk used by a built column file
        self.refusal: str | None = None  # X is malformed: the view must end, nothing may read X
        # Fraction built (0..1), for the page's notice; None while not known (another job builds
        # the shared cached store, or the store is read in place).
        self.progress: float | None = None
        self._original: Callable | None = None

    def start(self) -> ColumnStore:
        threading.Thread(target=self.build, name="column-copy", daemon=True).start()
        return self

    def attach(self, data_adaptor) -> None:
        """Answer cellxgene's get_X_array from now on (cellxgene's own stays the fallback)."""
        self._original = cx.replace_method(data_adaptor, "get_X_array", self.get_X_array)

    def build(self) -> None:
        started = time.monotonic()
        try:
            self.matrix = self._open()
            self.seconds = time.monotonic() - started
            built = f", {self.store_bytes / 2**20:,.0f} MiB in {self.store_path.name}" if self.store_bytes else ""
            say(f"X store ready ({self.choice.kind}) in {self.seconds:.2f} s{built}")
        except SparseStructureError as err:
            self.error = self.refusal = str(err)
        except Exception as err:  # say why; gene requests then fail (no whole-X fallback)
            self.error = f"{type(err).__name__}: {err}"
            say(f"the column-major copy of X failed, genes are read from the file (slower): {self.error}")
        finally:
            self.ready.set()

    def _open(self) -> RowBlocks | ColumnFile:
        if self.choice.kind == "memory":
            return read_row_blocks(self.path, progress=self._built)
        if not self.choice.build:  # already column-major: read in place
            return ColumnFile(self.path, "X")
        if self.cache is not None and self.key is not None:
            self.store_path = self.cache.obtain(self.key, fingerprint(self.path), self._build_into)
            return ColumnFile(self.store_path, value_range=value_range_of(self.store_path), row_file=RowFile(self.path))
        value_range = self._build_into(self.store_path)
        return ColumnFile(self.store_path, value_range=value_range, row_file=RowFile(self.path))

    def _built(self, fraction: float) -> None:
        self.progress = min(1.0, max(0.0, fraction))

    def _build_into(self, target: Path) -> tuple[float, float] | None:
        report = build_column_file(self.path, target, progress=self._built)
        self.store_bytes = report.bytes
        return report.value_range

    def state(self) -> str:
        """/galaxy/status's column_copy: "building", "ready" or "failed: why" (gene requests wait
        while building, and fail after a failure)."""
        if self.error:
            return f"failed: {self.error}"
        return "ready" if self.matrix is not None else "building"

    def describe(self) -> dict:
        """For /galaxy/status and the benchmarks: which store, why, and what it cost."""
        return {
            "kind": self.choice.kind,
            "reason": self.choice.reason,
            "seconds": self.seconds,
            "disk_bytes": self.store_bytes,
            "cached": self.cache is not None,
            "built": bool(self.store_bytes),
        }

    def get_X_array(self, obs_mask=None, var_mask=None, wait: float = 300.0):
        # Reading a gene from the row-major file scans all of X: at 500k cells that is ~0.5 s
        # of CPU and ~850 MiB of transient memory per request, while the copy is being built.
        # Waiting for the copy (under a second) is both faster and keeps the peak at one X.
        self.ready.wait(wait)
        matrix = self.matrix
        if matrix is None:
            # cellxgene's own reader would read all of X per request (and run scipy on a matrix the
            # copy may have refused): never after the copy failed.
            raise RuntimeError(f"the expression values cannot be read: {self.error or 'the copy of X is not ready'}")
        return matrix.select(obs_mask, var_mask)


def matrix_format(path: Path | str) -> tuple[str, str]:
    """X's encoding and value dtype, from the file's attributes."""
    storage = x_storage(path)
    return storage.encoding, storage.dtype


def x_storage(path: Path | str) -> XStorage:
    """X's encoding, dtype, shape and stored values, from metadata alone."""
    with h5py.File(path, "r") as f:
        return storage_of(f["X"])


def storage_of(node: h5py.Dataset | h5py.Group) -> XStorage:
    """A matrix node's encoding, dtype, shape and stored values, from metadata alone."""
    if isinstance(node, h5py.Dataset):
        shape = tuple(int(s) for s in node.shape) + (1,) * (2 - node.ndim)
        return XStorage(encoding_of(node) or "array", str(node.dtype), shape[:2], int(np.prod(shape[:2])))
    shape = tuple(int(s) for s in node.attrs.get("shape", (0, 0)))
    data = node["data"]
    return XStorage(encoding_of(node) or "array", str(data.dtype), shape, int(data.shape[0]))


def memory_budget_mb(options: ViewerOptions, environ: dict | None = None) -> int:
    """The job's memory: --memory-mb, else Galaxy's GALAXY_MEMORY_MB (0: not known)."""
    if options.memory_mb > 0:
        return int(options.memory_mb)
    raw = (os.environ if environ is None else environ).get("GALAXY_MEMORY_MB", "")
    try:
        return max(0, int(float(raw)))
    except ValueError:
        return 0


def start_column_copy(prepared: Path | str, options: ViewerOptions) -> ColumnStore | None:
    """Choose the store (store_choice.py), say which and why, and start building it now, so it
    overlaps cellxgene's imports and load. None: cellxgene reads X itself."""
    storage = x_storage(prepared)
    budget = memory_budget_mb(options)
    choice = choose_store(storage, options.x_store, options.backed, budget)
    say(f"X store: {choice.kind} ({choice.reason})")
    too_large = refusal(storage, choice, budget, _x_file_bytes(prepared)) or uns_refusal(str(prepared), budget)
    if too_large:
        raise XTooLarge(too_large)
    if choice.kind == "cellxgene" or not choice.build:
        _check_indices(prepared)  # no copy pass will see X's column numbers before scipy does
    if choice.kind == "cellxgene":
        return None
    cache, key = StoreCache.from_environment(), cache_key(options.dataset_uuid)
    if cache is not None and choice.build and key is None:
        say("X store cache: not used (no Galaxy dataset UUID to key it by)")
    return ColumnStore(str(prepared), choice, cache=cache, key=key).start()


def _x_file_bytes(path: Path | str) -> int:
    """Size of the file that stores X (the prepared file links X to the input)."""
    with h5py.File(path, "r") as f:
        return os.path.getsize(f["X"].file.filename)


def _check_indices(path: Path | str) -> None:
    with h5py.File(path, "r") as f:
        node = f["X"]
        if isinstance(node, h5py.Group) and encoding_of(node) in ("csr_matrix", "csc_matrix"):
            check_all_indices(node)
