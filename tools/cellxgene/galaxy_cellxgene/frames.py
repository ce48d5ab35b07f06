"""Read just enough of an h5ad's obs/var to check them, column by column.

cellxgene reads the whole dataset right after our checks, so reading every obs column
here too would double that cost. Column names come from attributes, categorical columns
are counted from their codes, and a column's values are read only when a check needs them.
"""

from __future__ import annotations

from functools import cached_property

import h5py
import numpy as np
import pandas as pd


def _attr(node: h5py.Group | h5py.Dataset, name: str, default=None):
    value = node.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else value


class LazyFrame:
    """The parts of a pandas DataFrame the checks use: columns, index, len, frame[col]."""

    def __init__(self, group: h5py.Group) -> None:
        if _attr(group, "encoding-type") != "dataframe" or "_index" not in group.attrs:
            raise TypeError(f"{group.name} is not an anndata >= 0.7 dataframe")
        self.group = group
        self._index_key = _attr(group, "_index")
        order = group.attrs.get("column-order", [])
        self.columns = pd.Index([c.decode() if isinstance(c, bytes) else str(c) for c in np.atleast_1d(order)])
        self._cache: dict[str, pd.Series] = {}

    def __len__(self) -> int:
        return int(self.group[self._index_key].shape[0])

    @cached_property
    def index(self) -> pd.Index:
        from anndata.io import read_elem

        return pd.Index(read_elem(self.group[self._index_key]))

    def __getitem__(self, column: str) -> pd.Series:
        if column not in self._cache:
            from anndata.io import read_elem

            self._cache[column] = pd.Series(read_elem(self.group[column]), name=column)
        return self._cache[column]

    def kind(self, column: str) -> tuple[str, int | None, str]:
        """(kind, values in use for categorical columns, dtype), reading codes, not labels."""
        node = self.group[column]
        encoding = _attr(node, "encoding-type", "")
        if encoding == "categorical":
            codes = node["codes"][()]
            return "categorical", int(np.unique(codes[codes >= 0]).size), "category"
        if encoding == "nullable-boolean":
            return "categorical", 2, "boolean"
        if encoding == "nullable-integer":
            return "continuous", None, str(node["values"].dtype)
        if isinstance(node, h5py.Dataset) and node.dtype.kind in "fiuc":
            return "continuous", None, str(node.dtype)
        return "categorical", int(self[column].nunique(dropna=True)), "string"


def read_frame(group: h5py.Group):
    """A LazyFrame, or for older layouts the whole frame through anndata."""
    try:
        return LazyFrame(group)
    except TypeError:
        from anndata.io import read_elem

        frame = read_elem(group)
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"{group.name} is not a dataframe") from None
        return frame


def column_kind(frame, column: str) -> tuple[str, int | None, str]:
    if isinstance(frame, LazyFrame):
        return frame.kind(column)
    series = frame[column]
    if (
        isinstance(series.dtype, pd.CategoricalDtype)
        or series.dtype == object
        or pd.api.types.is_bool_dtype(series.dtype)
    ):
        return "categorical", int(series.nunique(dropna=True)), str(series.dtype)
    return "continuous", None, str(series.dtype)
