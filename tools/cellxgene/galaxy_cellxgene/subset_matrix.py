"""Copy the selected rows of one h5ad matrix (X, a layer, raw/X) into another file, block by block.

A dense matrix and a CSR matrix are read in row blocks, a CSC matrix in column blocks (its stored
order): the memory held is one block plus the per-row (or per-cell) index arrays, never the
matrix. Every sparse block is checked before it is used (index bounds, a rising indptr): scipy
trusts its arguments, and a crafted file must not become an out-of-bounds write.
"""

from __future__ import annotations

import h5py
import numpy as np

from galaxy_cellxgene.frames import attr, encoding_of

# Per block: values (and their indices) read at once. 64 MiB of float32 values plus int32 indices.
BLOCK_BYTES = 64 * 2**20
SPARSE = ("csr_matrix", "csc_matrix")


class MatrixError(ValueError):
    """A matrix of the input that cannot be subset as stored; names the part and the fix."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


def _damaged(node: h5py.Group | h5py.Dataset, what: str) -> MatrixError:
    return MatrixError(
        f"The dataset's matrix {node.name} is damaged: {what}.",
        "Re-create the dataset with the tool that made it (or re-upload it), then try again.",
    )


def sparse_kind(node: h5py.Group) -> str:
    """csr_matrix or csc_matrix (anndata >= 0.7, or the h5sparse attributes before it); '' otherwise."""
    legacy = attr(node, "h5sparse_format", "")
    return encoding_of(node) or (f"{legacy}_matrix" if legacy else "")


def matrix_shape(node: h5py.Group | h5py.Dataset) -> tuple[int, int]:
    if isinstance(node, h5py.Dataset):
        if node.ndim != 2:
            raise _damaged(node, f"it has {node.ndim} dimensions instead of 2")
        return int(node.shape[0]), int(node.shape[1])
    encoding = sparse_kind(node)
    if encoding not in SPARSE:
        raise MatrixError(
            f"The dataset's matrix {node.name} has an encoding this tool cannot subset ({encoding or 'none'}).",
            "Save the dataset with anndata 0.7 or later (dense, CSR or CSC matrices), then try again.",
        )
    shape = node.attrs.get("shape", node.attrs.get("h5sparse_shape"))
    if shape is None or len(shape) != 2:
        raise _damaged(node, "its shape attribute is missing")
    return int(shape[0]), int(shape[1])


def copy_rows(
    source: h5py.Group | h5py.Dataset,
    parent: h5py.Group,
    key: str,
    mask: np.ndarray,
    block_bytes: int = BLOCK_BYTES,
) -> None:
    """Write `source[mask]` (mask: one bool per row) as `parent[key]`, in `source`'s own format."""
    n_rows, n_cols = matrix_shape(source)
    if len(mask) != n_rows:
        raise _damaged(source, f"it has {n_rows} rows for {len(mask)} cells")
    if isinstance(source, h5py.Dataset):
        _dense(source, parent, key, mask, block_bytes)
        return
    kind = sparse_kind(source)
    group = parent.create_group(key)
    group.attrs.update({"encoding-type": kind, "encoding-version": "0.1.0", "shape": (int(mask.sum()), n_cols)})
    indptr = _indptr(source, n_rows if kind == "csr_matrix" else n_cols)
    data, indices = source["data"], source["indices"]
    if data.shape != indices.shape or data.ndim != 1 or indptr[-1] != data.shape[0]:
        raise _damaged(source, "its data, indices and indptr disagree in length")
    out_data = _growing(group, "data", data)
    out_indices = _growing(group, "indices", indices)
    per_block = max(1, block_bytes // max(1, data.dtype.itemsize + indices.dtype.itemsize))
    if kind == "csr_matrix":
        counts = _csr_blocks(indptr, data, indices, mask, n_cols, per_block, out_data, out_indices)
    else:
        counts = _csc_blocks(indptr, data, indices, mask, per_block, out_data, out_indices)
    group.create_dataset("indptr", data=np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]))


def _dense(source: h5py.Dataset, parent: h5py.Group, key: str, mask: np.ndarray, block_bytes: int) -> None:
    n_rows, n_cols = source.shape
    kept = int(mask.sum())
    out = parent.create_dataset(key, shape=(kept, n_cols), dtype=source.dtype, **_storage(source))
    out.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
    rows = max(1, block_bytes // max(1, n_cols * source.dtype.itemsize))
    written = 0
    for start in range(0, n_rows, rows):
        chosen = np.flatnonzero(mask[start : start + rows])
        if not len(chosen):
            continue
        # Only the span from the first to the last chosen row of the block is read.
        first, last = start + chosen[0], start + chosen[-1] + 1
        block = source[first:last][chosen - chosen[0]]
        out[written : written + len(chosen)] = block
        written += len(chosen)


def _indptr(source: h5py.Group, n_major: int) -> np.ndarray:
    node = source["indptr"]
    if node.ndim != 1 or node.shape[0] != n_major + 1 or node.dtype.kind not in "iu":
        raise _damaged(source, f"its indptr does not hold {n_major + 1} integers")
    indptr = node[()].astype(np.int64)
    if indptr[0] != 0 or (np.diff(indptr) < 0).any():
        raise _damaged(source, "its indptr does not rise from 0")
    return indptr


def _storage(source: h5py.Dataset) -> dict:
    """The source's compression, if this HDF5 can write it; chunked so blocks can be appended."""
    options: dict = {}
    if source.compression in ("gzip", "lzf"):
        options.update(compression=source.compression, compression_opts=source.compression_opts)
    return options


def _growing(group: h5py.Group, key: str, like: h5py.Dataset) -> h5py.Dataset:
    chunk = (min(max(1, like.shape[0]), 2**16),)
    return group.create_dataset(key, shape=(0,), maxshape=(None,), dtype=like.dtype, chunks=chunk, **_storage(like))


def _append(out: h5py.Dataset, values: np.ndarray) -> None:
    if len(values):
        at = out.shape[0]
        out.resize((at + len(values),))
        out[at:] = values


def _checked_indices(source: h5py.Dataset, start: int, stop: int, bound: int) -> np.ndarray:
    indices = source[start:stop]
    if indices.dtype.kind not in "iu":
        raise _damaged(source.parent, "its indices are not integers")
    if len(indices) and (indices.min() < 0 or indices.max() >= bound):
        raise _damaged(source.parent, f"an index lies outside 0..{bound - 1}")
    return indices


def _blocks(indptr: np.ndarray, per_block: int):
    """[start, stop) ranges of the major axis, each holding about `per_block` stored values."""
    n_major = len(indptr) - 1
    start = 0
    while start < n_major:
        stop = int(np.searchsorted(indptr, indptr[start] + per_block, side="right")) - 1
        stop = min(n_major, max(start + 1, stop))
        yield start, stop
        start = stop


def _csr_blocks(indptr, data, indices, mask, n_cols, per_block, out_data, out_indices) -> np.ndarray:
    counts = np.diff(indptr)[mask]
    for start, stop in _blocks(indptr, per_block):
        chosen = mask[start:stop]
        if not chosen.any():
            continue
        lo, hi = int(indptr[start]), int(indptr[stop])
        keep = np.repeat(chosen, np.diff(indptr[start : stop + 1]))
        block_indices = _checked_indices(indices, lo, hi, n_cols)
        _append(out_indices, block_indices[keep])
        _append(out_data, data[lo:hi][keep])
    return counts


def _csc_blocks(indptr, data, indices, mask, per_block, out_data, out_indices) -> np.ndarray:
    n_rows = len(mask)
    new_row = np.cumsum(mask, dtype=np.int64) - 1  # a kept row's position in the subset
    counts = np.zeros(len(indptr) - 1, dtype=np.int64)
    for start, stop in _blocks(indptr, per_block):
        lo, hi = int(indptr[start]), int(indptr[stop])
        if hi == lo:
            continue
        rows = _checked_indices(indices, lo, hi, n_rows)
        keep = mask[rows]
        column = np.repeat(np.arange(start, stop), np.diff(indptr[start : stop + 1]))
        counts[start:stop] = np.bincount(column[keep] - start, minlength=stop - start)
        _append(out_indices, new_row[rows[keep]].astype(indices.dtype, copy=False))
        _append(out_data, data[lo:hi][keep])
    return counts
