"""Categorical codes within their categories, checked where the checks run.

A categorical column stores one integer code per cell: -1 for a missing value, else a position in
the column's categories. A code outside -1..n-1 passes every reader that does not look (pandas'
`from_codes` refuses it later, with a message about pandas, not about the file; cellxgene indexes
with it). Here codes are read in chunks, one column at a time, and a column with a code out of
range is an error that names the column and the code.
"""

from __future__ import annotations

import h5py
import numpy as np

from galaxy_cellxgene.frames import encoding_of
from galaxy_cellxgene.problems import Problem

CHUNK = 1 << 20
FIX = "Re-create the dataset with anndata (the file is damaged, or was not written by anndata)."


def _categories_count(node: h5py.Group | h5py.Dataset) -> int:
    if isinstance(node, h5py.Dataset):
        return int(node.shape[0]) if node.ndim else 1
    for key in ("values", "codes"):  # nullable categories
        if isinstance(node.get(key), h5py.Dataset):
            return int(node[key].shape[0])
    return -1


def _codes_and_count(frame: h5py.Group, column: str) -> tuple[h5py.Dataset, int] | None:
    node = frame.get(column)
    if isinstance(node, h5py.Group) and encoding_of(node) == "categorical":
        codes, categories = node.get("codes"), node.get("categories")
        if isinstance(codes, h5py.Dataset) and categories is not None:
            return codes, _categories_count(categories)
        return None
    legacy = frame.get("__categories")
    if isinstance(node, h5py.Dataset) and "categories" in node.attrs and isinstance(legacy, h5py.Group):
        labels = legacy.get(column)  # the walk (hdf5_walk.py) made sure the reference points here
        if isinstance(labels, h5py.Dataset):
            return node, _categories_count(labels)
    return None


def _out_of_range(codes: h5py.Dataset, count: int) -> int | None:
    if codes.dtype.kind not in "iu" or codes.ndim != 1:
        return None
    for start in range(0, codes.shape[0], CHUNK):
        piece = codes[start : start + CHUNK]
        if not piece.size:
            continue
        low, high = int(piece.min()), int(piece.max())
        if low < -1:
            return low
        if high >= count:
            return high
    return None


def code_problems(f: h5py.File) -> list[Problem]:
    """One error per obs/var categorical column with a code outside -1..(categories - 1)."""
    found = []
    for axis in ("obs", "var"):
        frame = f.get(axis)
        if not isinstance(frame, h5py.Group):
            continue  # anndata < 0.7 stored obs/var as one structured array: no codes
        order = np.atleast_1d(frame.attrs.get("column-order", []))
        for raw in order:
            column = raw.decode() if isinstance(raw, bytes) else str(raw)
            pair = _codes_and_count(frame, column)
            if pair is None:
                continue
            codes, count = pair
            bad = _out_of_range(codes, count)
            if bad is not None:
                found.append(
                    Problem(
                        "error",
                        f"{axis} column '{column}' has the category code {bad}, but it has {count} categories "
                        f"(codes run from -1, missing, to {count - 1}).",
                        FIX,
                    )
                )
    return found
