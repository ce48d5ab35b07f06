"""A sparse matrix's structure, checked before any compiled routine sees it.

scipy trusts the arrays it is given: `tocsc`, column slicing and row selection index memory by
the file's column numbers and row pointers without checking bounds (scipy checks them only on
request), so a crafted X with a column number past the end writes to the heap at an offset the
file chooses. Here the structure is checked in two passes that never hold more than a block:

- `structure_problem`, O(rows) and metadata-sized, run by every check (validate.py): lengths
  agree, the row pointer starts at 0, never decreases and ends at the number of stored values.
- `check_block`, the column numbers of one block within [0, n_columns), run inside the column
  copy's own pass (column_file.py, columns.py) on the block it is about to convert, and by
  `check_all_indices` where no copy pass runs (cellxgene then reads X itself).

A failure is a SparseStructureError naming the matrix; nothing falls back to a reader that would
run the same compiled code on the same arrays.
"""

from __future__ import annotations

import h5py
import numpy as np

from galaxy_cellxgene.frames import encoding_of
from galaxy_cellxgene.problems import Problem

CHUNK = 1 << 20  # pointer entries or column numbers read at a time: 8 MiB
SPARSE = ("csr_matrix", "csc_matrix")
FIX = "the file is damaged or was not written by anndata; re-create it with anndata (or scanpy) and upload that."


class SparseStructureError(ValueError):
    """The matrix is not a well-formed CSR/CSC matrix; the message names it and says why."""


def refused(problem: str) -> SparseStructureError:
    return SparseStructureError(f"{problem} Fix: {FIX[0].upper()}{FIX[1:]}")


def describe(name: str, encoding: str, reason: str) -> str:
    kind = "CSR" if encoding == "csr_matrix" else "CSC"
    return f"{name} is not a well-formed {kind} sparse matrix: {reason}; refused before any reader used it."


def structure_problem(node: h5py.Group, shape: tuple[int, int], name: str = "X") -> str | None:
    """Why the sparse group `node` (of the given shape) is malformed, or None. Reads the row
    pointer in chunks; never the values or column numbers."""
    encoding = encoding_of(node)
    major, minor = shape if encoding == "csr_matrix" else shape[::-1]
    parts = {}
    for key in ("data", "indices", "indptr"):
        part = node.get(key)
        if not isinstance(part, h5py.Dataset) or part.ndim != 1:
            return describe(name, encoding, f"its '{key}' is missing or not a 1-D array")
        parts[key] = part
    data, indices, indptr = parts["data"], parts["indices"], parts["indptr"]
    for key in ("indices", "indptr"):
        if parts[key].dtype.kind not in "iu":
            return describe(name, encoding, f"its '{key}' holds {parts[key].dtype} values, not integers")
    if min(major, minor) < 0:
        return describe(name, encoding, f"its shape {shape} is negative")
    if indptr.shape[0] != major + 1:
        return describe(name, encoding, f"its index pointer has {indptr.shape[0]} entries, not {major + 1}")
    nnz = data.shape[0]
    if indices.shape[0] != nnz:
        return describe(name, encoding, f"it stores {nnz} values but {indices.shape[0]} column numbers")
    previous = 0
    for start in range(0, major + 1, CHUNK):
        piece = indptr[start : start + CHUNK].astype(np.int64)
        if start == 0 and piece[0] != 0:
            return describe(name, encoding, f"its index pointer starts at {int(piece[0])}, not 0")
        steps = np.diff(piece, prepend=previous)
        if (steps < 0).any():
            at = start + int(np.flatnonzero(steps < 0)[0])
            return describe(name, encoding, f"its index pointer decreases at entry {at}")
        previous = int(piece[-1])
    if previous != nnz:
        return describe(name, encoding, f"its index pointer ends at {previous}, but {nnz} values are stored")
    return None


def require_well_formed(node: h5py.Group, shape: tuple[int, int], name: str = "X") -> None:
    """structure_problem as an exception (SparseStructureError), for the readers of X."""
    problem = structure_problem(node, shape, name)
    if problem:
        raise refused(problem)


def check_block(indices: np.ndarray, n_minor: int, name: str = "X", encoding: str = "csr_matrix") -> None:
    """Raise SparseStructureError if a column (row, for CSC) number of this block is out of range."""
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n_minor):
        bad = int(indices.min()) if int(indices.min()) < 0 else int(indices.max())
        what = "column" if encoding == "csr_matrix" else "row"
        raise refused(describe(name, encoding, f"it names {what} {bad}, outside 0..{n_minor - 1}"))


def check_all_indices(node: h5py.Group, name: str = "X") -> None:
    """The block check over every stored column number, in chunks (for readers with no copy pass)."""
    encoding = encoding_of(node)
    shape = tuple(int(s) for s in node.attrs["shape"])
    n_minor = shape[1] if encoding == "csr_matrix" else shape[0]
    indices = node["indices"]
    for start in range(0, indices.shape[0], CHUNK):
        check_block(indices[start : start + CHUNK], n_minor, name, encoding)


def matrix_problems(f: h5py.File, layer: str | None, n_obs: int, n_vars: int) -> list[Problem]:
    """structure_problem for X and the chosen layer (the matrices the viewer reads), where they
    are sparse groups of the dataset's shape (other shape errors are validate.py's)."""
    found = []
    for name, path in (("X", "X"), (f"layer '{layer}'", f"layers/{layer}")):
        if path != "X" and not layer:
            continue
        node = f.get(path)
        if not isinstance(node, h5py.Group) or encoding_of(node) not in SPARSE:
            continue
        shape = node.attrs.get("shape")
        if shape is None or len(shape) != 2 or tuple(int(s) for s in shape) != (n_obs, n_vars):
            continue
        problem = structure_problem(node, (n_obs, n_vars), name)
        if problem:
            found.append(Problem("error", problem, FIX[0].upper() + FIX[1:]))
    return found
