"""Where gene requests are answered from: an in-memory column copy of X, one on disk, or cellxgene.

A pure rule over X's metadata (encoding, dtype, shape, non-zeros) and the job's memory, so every
case is a one-line unit test and the reason can be logged word for word:

- `memory`: X's non-zeros as CSC row blocks in memory (columns.py): the fastest gene reads, but
  the session then holds all of X.
- `disk`: a CSC copy of X in an HDF5 file in the job's working directory (column_file.py), read one
  gene's non-zeros per click; the session's memory no longer grows with X. An input that is
  already column-major (CSC) is read in place, with nothing to build.
- `cellxgene`: no copy; cellxgene reads X itself (dense or integer X, which its backed reader and
  our copies do not handle, or a CSC X that fits the budget: cellxgene then holds it in memory,
  where a column is already a slice).

The budget is the job's memory in MiB (Galaxy's `GALAXY_MEMORY_MB`, set from the admin's job
destination, or `--memory-mb`); without one the in-memory copy is used, as before this rule
existed. A copy may take at most X_SHARE of the budget: the rest is for obs, the embeddings,
cellxgene itself and a differential expression (its own limit, settings.diffexp_cell_limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

StoreKind = Literal["memory", "disk", "cellxgene"]
Forced = Literal["auto", "memory", "disk"]
X_SHARE = 0.5
FLOAT_DTYPES = ("float32", "float64")
MIB = 1 << 20


@dataclass(frozen=True)
class XStorage:
    """What the file says about X, without reading any of its values."""

    encoding: str  # csr_matrix | csc_matrix | array | ...
    dtype: str
    shape: tuple[int, int]
    nnz: int  # stored values (for a dense X: every entry)


@dataclass(frozen=True)
class StoreChoice:
    kind: StoreKind
    reason: str
    build: bool = False  # disk only: True when a CSC file must be written first (CSR input)


def copy_bytes(storage: XStorage) -> int:
    """Memory an in-memory column copy of X takes: values, int32 row numbers, column pointers."""
    itemsize = 8 if storage.dtype == "float64" else 4
    return storage.nnz * (itemsize + 4) + (storage.shape[1] + 1) * 8


def resident_bytes(storage: XStorage, choice: StoreChoice) -> int:
    """Memory X holds in a session served with `choice`: what the list tool budgets per dataset.
    A disk store keeps only its column pointer and the row file's pointer in memory."""
    if choice.kind == "memory":
        return copy_bytes(storage)
    if choice.kind == "disk":
        return (storage.shape[1] + 1) * 8 + (storage.shape[0] + 1) * 8
    itemsize = np.dtype(storage.dtype).itemsize
    if storage.encoding == "array":
        return storage.shape[0] * storage.shape[1] * itemsize
    return storage.nnz * (itemsize + 4) + (max(storage.shape) + 1) * 8


def choose_store(storage: XStorage, forced: Forced = "auto", backed: bool = False, budget_mb: int = 0) -> StoreChoice:
    """The store for this X, and why (a sentence for the job log)."""
    size_mib = copy_bytes(storage) / MIB
    if storage.encoding not in ("csr_matrix", "csc_matrix") or storage.dtype not in FLOAT_DTYPES:
        what = "dense" if storage.encoding == "array" else f"{storage.encoding} of {storage.dtype}"
        return StoreChoice("cellxgene", f"X is {what}: cellxgene reads it itself (no column copy for this kind)")
    row_major = storage.encoding == "csr_matrix"
    in_place = "" if row_major else ", read in place (X is already column-major)"

    def on_disk(why: str) -> StoreChoice:
        return StoreChoice("disk", f"{why}: column-major X on disk{in_place}", build=row_major)

    def in_memory(why: str) -> StoreChoice:
        if row_major:
            return StoreChoice("memory", f"{why}: column copy of X in memory ({size_mib:,.0f} MiB)")
        return StoreChoice("cellxgene", f"{why}: cellxgene holds the column-major X in memory ({size_mib:,.0f} MiB)")

    if forced == "disk":
        return on_disk("asked for (--x-store disk)")
    if forced == "memory":
        return in_memory("asked for (--x-store memory)")
    if backed:
        return on_disk("backed mode keeps X on disk")
    if budget_mb <= 0:
        return in_memory("no memory budget given (GALAXY_MEMORY_MB unset)")
    allowed = budget_mb * X_SHARE
    if size_mib <= allowed:
        return in_memory(f"X fits: {size_mib:,.0f} MiB <= {X_SHARE:.0%} of the job's {budget_mb:,} MiB")
    return on_disk(f"X is {size_mib:,.0f} MiB, over {X_SHARE:.0%} of the job's {budget_mb:,} MiB")
