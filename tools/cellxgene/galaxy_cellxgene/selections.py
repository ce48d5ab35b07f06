"""Selections as cellxgene passes them (boolean masks or integer lists), as sorted positions and runs."""

from __future__ import annotations

import numpy as np


def as_indices(selection, size: int) -> np.ndarray:
    """cellxgene passes boolean masks; integer selections are accepted too."""
    selection = np.asarray(selection)
    if selection.dtype == bool:
        if selection.shape != (size,):
            raise IndexError(f"mask of length {selection.shape} for an axis of {size}")
        return np.flatnonzero(selection)
    return selection.astype(np.int64, copy=False).ravel()


def runs(sorted_positions: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) runs of consecutive integers in a sorted array."""
    if sorted_positions.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(sorted_positions) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [sorted_positions.size]))
    return [(int(sorted_positions[s]), int(sorted_positions[e - 1]) + 1) for s, e in zip(starts, stops, strict=True)]
