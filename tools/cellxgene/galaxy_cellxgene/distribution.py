"""cellxgene's X distribution rule (normal vs count), without numba's per-start compile.

cellxgene's `auto` compiles a numba kernel on every start (~0.3 s) and, in backed mode,
loads the whole matrix into memory on the first differential expression. The rule itself
is tiny: over the stored values (non-zeros of a sparse X), ignoring non-finite ones, a
range above 24 means counts. numpy computes it in milliseconds on data already loaded,
or in bounded chunks straight from the file.
"""

from __future__ import annotations

from collections.abc import Iterable

import h5py
import numpy as np

from galaxy_cellxgene.settings import Distribution

CHUNK = 1 << 24
COUNT_RANGE = 24


def _finite_min_max(chunk: np.ndarray) -> tuple[float, float] | None:
    if chunk.size == 0:
        return None
    low, high = chunk.min(), chunk.max()
    if np.isfinite(low) and np.isfinite(high):
        return float(low), float(high)
    finite = chunk[np.isfinite(chunk)]
    return (float(finite.min()), float(finite.max())) if finite.size else None


def from_chunks(chunks: Iterable[np.ndarray]) -> Distribution:
    low, high = np.inf, -np.inf
    for chunk in chunks:
        bounds = _finite_min_max(np.asarray(chunk).ravel())
        if bounds:
            low, high = min(low, bounds[0]), max(high, bounds[1])
    if not np.isfinite(low):
        return "normal"  # cellxgene's answer for an empty matrix
    return "count" if high - low > COUNT_RANGE else "normal"


def of_matrix(X) -> Distribution:
    """For an in-memory X (dense ndarray or scipy sparse)."""
    data = X.data if hasattr(X, "indptr") else np.asarray(X).ravel()
    return from_chunks(data[i : i + CHUNK] for i in range(0, data.size, CHUNK))


def of_file(path: str, matrix: str = "X") -> Distribution:
    """For a matrix in an h5ad (dense dataset or sparse group), read in bounded chunks."""
    with h5py.File(path, "r") as f:
        node = f[matrix]
        dataset = node["data"] if isinstance(node, h5py.Group) else node
        if dataset.ndim == 2:
            rows = max(1, CHUNK // max(1, dataset.shape[1]))
            return from_chunks(dataset[i : i + rows] for i in range(0, dataset.shape[0], rows))
        return from_chunks(dataset[i : i + CHUNK] for i in range(0, dataset.shape[0], CHUNK))
