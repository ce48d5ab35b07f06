"""What X may cost the job before the viewer starts: memory within the budget, disk within a cap.

A file's size says little about what its X costs: deflated zeros store about a thousand values per
byte, so a 1 MB file can hold a well-formed X of a hundred million values (the scan refuses only
declared bytes the file does not store at all: hdf5_walk.py). So the cost is computed from X's
metadata and compared, before anything is read:

- memory: where cellxgene itself holds X in memory (a dense or integer X, or a CSC X judged to
  fit), X may take at most store_choice.X_SHARE of the job's memory (GALAXY_MEMORY_MB); over it,
  the view is refused with the figures, instead of the kernel killing the job later.
- disk: the column-major copy (column_file.py) writes two copies of X's non-zeros while it is
  built. It may use at most COPY_DISK_FACTOR times the size of the file holding X (at least
  COPY_DISK_FLOOR_MB), or what the admin sets in GALAXY_CELLXGENE_COPY_DISK_MB (docs/admin.md).
- uns: cellxgene reads it whole; its datasets may declare at most UNS_SHARE of the job's memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import h5py
import numpy as np

from galaxy_cellxgene.store_choice import MIB, X_SHARE, StoreChoice, XStorage, copy_bytes

COPY_DISK_FACTOR = 64  # real h5ad values deflate 2-5 fold: the copy needs ~10x the stored X
COPY_DISK_FLOOR_MB = 256
COPY_DISK_VARIABLE = "GALAXY_CELLXGENE_COPY_DISK_MB"
UNS_SHARE = 0.25


class XTooLarge(ValueError):
    """X costs more memory or disk than the job may use; the message has the figures and the fix."""


def held_bytes(storage: XStorage) -> int:
    """Memory cellxgene takes to hold X as stored: every value of a dense X, or a sparse X's parts."""
    if storage.encoding in ("csr_matrix", "csc_matrix"):
        return copy_bytes(storage)
    itemsize = np.dtype(storage.dtype).itemsize if storage.dtype != "unknown" else 8
    return storage.nnz * itemsize


def copy_disk_bytes(storage: XStorage) -> int:
    """Disk the column copy uses at its peak: spill files and result, values and row numbers."""
    itemsize = np.dtype(storage.dtype).itemsize
    row_itemsize = 4 if storage.shape[0] < np.iinfo(np.int32).max else 8
    return 2 * storage.nnz * (itemsize + row_itemsize)


def copy_disk_cap(x_file_bytes: int, environ: Mapping[str, str] | None = None) -> int:
    raw = (os.environ if environ is None else environ).get(COPY_DISK_VARIABLE, "")
    try:
        admin = int(float(raw))
    except ValueError:
        admin = 0
    if admin > 0:
        return admin * MIB
    return max(COPY_DISK_FLOOR_MB * MIB, COPY_DISK_FACTOR * x_file_bytes)


def refusal(
    storage: XStorage, choice: StoreChoice, budget_mb: int, x_file_bytes: int, environ: Mapping[str, str] | None = None
) -> str | None:
    """Why this X cannot be served within the job's bounds (a sentence with the fix), or None."""
    if choice.kind == "cellxgene" and budget_mb > 0:
        need = held_bytes(storage)
        if need > budget_mb * X_SHARE * MIB:
            return (
                f"X ({storage.encoding}, {storage.shape[0]:,} x {storage.shape[1]:,} {storage.dtype}) takes "
                f"{need / MIB:,.0f} MiB in memory, over {X_SHARE:.0%} of the job's {budget_mb:,} MiB; cellxgene "
                "holds this kind of X in memory, so the viewer would be killed. Fix: give the job more memory "
                "(ask your Galaxy administrator), or store X as a float32 sparse matrix (CSR), which is read from disk."
            )
    if choice.kind == "disk" and choice.build:
        need, cap = copy_disk_bytes(storage), copy_disk_cap(x_file_bytes, environ)
        if need > cap:
            return (
                f"X stores {storage.nnz:,} values: its column-major copy would write {need / MIB:,.0f} MiB, over this "
                f"job's cap of {cap / MIB:,.0f} MiB ({COPY_DISK_FACTOR} times the {x_file_bytes / MIB:,.1f} MiB file, "
                f"or {COPY_DISK_VARIABLE}). Fix: remove stored zeros (adata.X.eliminate_zeros()) and re-save, or ask "
                f"your Galaxy administrator to raise {COPY_DISK_VARIABLE}."
            )
    return None


def uns_bytes(path: str) -> int:
    """Bytes uns's datasets declare (the scan has bounded its depth and size: hdf5_walk.py)."""
    total = 0
    with h5py.File(path, "r") as f:
        pending = [f["uns"]] if isinstance(f.get("uns"), h5py.Group) else []
        while pending:
            for node in pending.pop().values():
                if isinstance(node, h5py.Group):
                    pending.append(node)
                elif isinstance(node, h5py.Dataset):
                    total += int(node.id.get_space().get_simple_extent_npoints()) * node.id.get_type().get_size()
    return total


def uns_refusal(path: str, budget_mb: int) -> str | None:
    if budget_mb <= 0:
        return None
    need = uns_bytes(path)
    if need <= budget_mb * UNS_SHARE * MIB:
        return None
    return (
        f"uns holds {need / MIB:,.0f} MiB of values, over {UNS_SHARE:.0%} of the job's {budget_mb:,} MiB; cellxgene "
        "reads uns whole, so the viewer would be killed. Fix: remove the large uns entries "
        "(e.g. `del adata.uns[name]`) and re-save, or give the job more memory."
    )
