"""Rows of a CSR X read from its file, for the requests that ask for cells (differential
expression) while gene requests go to the column store (column_file.py): only the selected rows'
non-zeros are read, so a session never holds X."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from scipy import sparse

from galaxy_cellxgene.column_file import NNZ_PER_BLOCK
from galaxy_cellxgene.selections import runs

# Neighbouring selected rows closer than this many non-zeros are read in one go (one HDF5 call
# instead of many tiny ones).
GAP_NNZ = 1 << 16


class RowFile:
    """Rows of a CSR matrix in an HDF5 file, for requests that ask for cells (differential
    expression): only the selected rows' non-zeros are read. Keeps the row pointer in memory
    (8 bytes per cell, like an obs column)."""

    def __init__(self, path: str | Path, matrix: str = "X") -> None:
        self._file = h5py.File(path, "r")
        node = self._file[matrix]
        self.shape = tuple(int(s) for s in node.attrs["shape"])
        self.indptr = node["indptr"][()].astype(np.int64, copy=False)
        self._data, self._indices = node["data"], node["indices"]

    def rows(self, rows: np.ndarray) -> sparse.csr_matrix:
        order = np.argsort(rows, kind="stable")
        wanted = rows[order]
        pieces = []
        for start, stop in self._spans(wanted):
            lo, hi = int(self.indptr[start]), int(self.indptr[stop])
            span = sparse.csr_matrix(
                (self._data[lo:hi], self._indices[lo:hi], self.indptr[start : stop + 1] - lo),
                shape=(stop - start, self.shape[1]),
            )
            local = wanted[(wanted >= start) & (wanted < stop)] - start
            pieces.append(span[local, :])
        if not pieces:
            return sparse.csr_matrix((0, self.shape[1]), dtype=self._data.dtype)
        matrix = sparse.vstack(pieces, format="csr")
        if np.any(order != np.arange(order.size)):
            matrix = matrix[np.argsort(order, kind="stable"), :]
        return matrix

    def _spans(self, wanted: np.ndarray) -> Iterator[tuple[int, int]]:
        """Row ranges covering `wanted` (sorted), joining runs separated by few non-zeros."""
        span: tuple[int, int] | None = None
        for start, stop in runs(np.unique(wanted)):
            if span is not None:
                gap = int(self.indptr[start] - self.indptr[span[1]])
                size = int(self.indptr[stop] - self.indptr[span[0]])
                if gap <= GAP_NNZ and size <= NNZ_PER_BLOCK:
                    span = (span[0], stop)
                    continue
                yield span
            span = (start, stop)
        if span is not None:
            yield span

    def close(self) -> None:
        self._file.close()
