"""The one reader of an h5ad's obs/var metadata, for every on-disk format anndata has written since 0.7.

Used by the checks (validate.py), the report, prepare.py (what cellxgene is handed) and the
merge (labels.py). It reads with h5py, element by element, so it depends on neither the
anndata nor the pandas version that wrote the file nor the one installed here:

- dataframe groups, encoding 0.2.0 (anndata >= 0.8) and 0.1.0 (anndata 0.7, categorical
  columns as codes with a `categories` reference into `__categories`);
- columns and indexes as plain datasets, `string-array`, `categorical` (string, numeric or
  nullable categories), `nullable-integer`, `nullable-boolean` and `nullable-string-array`
  (anndata 0.13 with pandas 3 writes every string column and the index this way).

cellxgene reads the whole dataset right after our checks, so reading every obs column
here too would double that cost: column names come from attributes, categorical columns
are counted from their codes, and a column's values are read only when a check needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import h5py
import numpy as np
import pandas as pd

from galaxy_cellxgene.failure import reading

NULLABLE = ("nullable-integer", "nullable-boolean", "nullable-string-array")


class FrameError(ValueError):
    """A dataframe element this reader does not understand; names the element."""


def attr(node: h5py.Group | h5py.Dataset, name: str, default=None):
    value = node.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else value


def encoding_of(node: h5py.Group | h5py.Dataset) -> str:
    """anndata's `encoding-type` attribute of an element, '' when absent."""
    return str(attr(node, "encoding-type", "") or "")


def _strings(dataset: h5py.Dataset) -> np.ndarray:
    if dataset.dtype.kind in "OSU" or h5py.check_string_dtype(dataset.dtype) is not None:
        return np.asarray(dataset.asstr()[()], dtype=object)
    return dataset[()]


def element_length(node: h5py.Group | h5py.Dataset) -> int:
    """Rows of a column or index element, without reading its values."""
    if isinstance(node, h5py.Dataset):
        return int(node.shape[0]) if node.ndim else 1
    for key in ("values", "codes"):
        if key in node:
            return int(node[key].shape[0])
    raise FrameError(f"{node.name} ({encoding_of(node) or 'group'}) is not a column anndata writes")


def read_values(node: h5py.Group | h5py.Dataset, legacy_categories: h5py.Dataset | None = None):
    """A column's values as numpy or pandas: object strings, numbers, Categorical, or pandas'
    nullable arrays (Int64, boolean, string) for the nullable encodings."""
    reading(node)
    encoding = encoding_of(node)
    if isinstance(node, h5py.Dataset):
        values = _strings(node)
        if legacy_categories is not None:  # anndata 0.7: codes here, labels in obs/__categories
            categories = _strings(legacy_categories)
            ordered = bool(attr(node, "ordered", False))
            return pd.Categorical.from_codes(values.astype(np.int64), categories=categories, ordered=ordered)
        return values
    if encoding == "categorical":
        categories = read_values(node["categories"])
        categories = pd.Index(np.asarray(categories, dtype=object) if _is_string_array(categories) else categories)
        codes = node["codes"][()].astype(np.int64)
        return pd.Categorical.from_codes(codes, categories=categories, ordered=bool(attr(node, "ordered", False)))
    if encoding in NULLABLE:
        mask = node["mask"][()].astype(bool) if "mask" in node else None
        values = _strings(node["values"])
        if encoding == "nullable-string-array":
            values = values.astype(object)
            if mask is not None:
                values[mask] = None
            return pd.array(values, dtype="string")
        mask = _mask(mask, values)
        if encoding == "nullable-boolean":
            return pd.arrays.BooleanArray(values.astype(bool), mask)
        return pd.arrays.IntegerArray(values, mask)
    raise FrameError(f"{node.name} is stored as '{encoding or 'an unnamed group'}', not a column anndata writes")


def _mask(mask: np.ndarray | None, values: np.ndarray) -> np.ndarray:
    return mask if mask is not None else np.zeros(values.shape, dtype=bool)


def _is_string_array(values) -> bool:
    return (
        isinstance(values, pd.arrays.StringArray)
        or (isinstance(values, np.ndarray) and values.dtype == object)
        or str(getattr(values, "dtype", "")) in ("string", "str")
    )


@dataclass(frozen=True)
class Presentation:
    """How one column is handed to cellxgene 1.3.0, when it cannot load it as written."""

    column: str
    encoding: str
    shown_as: str


class FrameReading:
    """What every frame reader derives from its columns (LazyFrame, legacy_frame.StructuredFrame):
    each defines `columns`, `index`, `__getitem__` and `_find_unreadable`."""

    def unreadable(self) -> dict[str, str]:
        """Columns neither this reader nor cellxgene 1.3.0 understands, with the reason."""
        return self._unreadable

    @cached_property
    def _unreadable(self) -> dict[str, str]:
        return self._find_unreadable()

    def to_pandas(self) -> pd.DataFrame:
        """Every readable column, as read (small: obs and var hold metadata only)."""
        frame = pd.DataFrame({c: self[c].array for c in self.columns if c not in self.unreadable()})
        frame.index = self.index
        return frame

    def presented(self) -> pd.DataFrame:
        """The frame in dtypes cellxgene 1.3.0 loads: the small prepared file's obs/var."""
        shown = [c for c in self.columns if c not in self.unreadable()]
        frame = pd.DataFrame({c: present(self[c]) for c in shown}, index=pd.Index(self.index.astype(str)))
        frame.index.name = None
        return frame


class LazyFrame(FrameReading):
    """The parts of a pandas DataFrame the checks use: columns, index, len, frame[col]."""

    def __init__(self, group: h5py.Group) -> None:
        reading(group)
        encoding = encoding_of(group)
        if encoding != "dataframe" or "_index" not in group.attrs:
            hint = "a structured array (anndata < 0.7)" if isinstance(group, h5py.Dataset) else "not a dataframe"
            raise FrameError(f"{group.name} is {hint}")
        self.group = group
        self.legacy = str(attr(group, "encoding-version", "0.2.0")) == "0.1.0"
        self.index_key = str(attr(group, "_index"))
        order = group.attrs.get("column-order", [])
        self.columns = pd.Index([c.decode() if isinstance(c, bytes) else str(c) for c in np.atleast_1d(order)])
        self._cache: dict[str, pd.Series] = {}

    def __len__(self) -> int:
        return element_length(self.group[self.index_key])

    def node(self, column: str) -> h5py.Group | h5py.Dataset:
        return self.group[column]

    def _legacy_categories(self, column: str) -> h5py.Dataset | None:
        node = self.group[column]
        if not self.legacy or not isinstance(node, h5py.Dataset) or "categories" not in node.attrs:
            return None
        ref = node.attrs["categories"]
        return self.group.file[ref] if isinstance(ref, h5py.Reference) else self.group["__categories"][column]

    @cached_property
    def index(self) -> pd.Index:
        values = read_values(self.group[self.index_key])
        return pd.Index(np.asarray(values, dtype=object) if _is_string_array(values) else values, dtype=object)

    def __getitem__(self, column: str) -> pd.Series:
        if column not in self._cache:
            values = read_values(self.group[column], self._legacy_categories(column))
            self._cache[column] = pd.Series(values, name=column)
        return self._cache[column]

    def encoding(self, column: str) -> str:
        node = self.group[column]
        if self._legacy_categories(column) is not None:
            return "categorical"
        return encoding_of(node) or ("string-array" if _strings_dtype(node) else "array")

    def kind(self, column: str) -> tuple[str, int | None, str]:
        """(kind, values in use for categorical columns, dtype), reading codes, not labels.

        The kind is what cellxgene sees: for nullable columns, what `presentation` hands it."""
        node = self.group[column]
        encoding = self.encoding(column)
        if encoding == "categorical":
            codes = node[()] if isinstance(node, h5py.Dataset) else node["codes"][()]
            return "categorical", int(np.unique(codes[codes >= 0]).size), "category"
        if encoding == "nullable-boolean":
            return "categorical", 2, "boolean"
        if encoding == "nullable-integer":
            return "continuous", None, str(node["values"].dtype)
        if isinstance(node, h5py.Dataset) and node.dtype.kind in "fiuc":
            return "continuous", None, str(node.dtype)
        if isinstance(node, h5py.Dataset) and node.dtype.kind == "b":
            return "categorical", 2, "bool"
        return "categorical", int(self[column].nunique(dropna=True)), "string"

    def _find_unreadable(self) -> dict[str, str]:
        found = {}
        for column in self.columns:
            node = self.group.get(column)
            if node is None:
                found[column] = "listed in column-order but absent from the file"
            elif isinstance(node, h5py.Group) and encoding_of(node) not in ("categorical", *NULLABLE):
                found[column] = f"stored as '{encoding_of(node) or 'a group without encoding'}'"
            elif isinstance(node, h5py.Dataset) and (node.ndim != 1 or node.dtype.kind not in "biufOSU"):
                found[column] = f"{node.ndim}-D {node.dtype} values"
        return found

    def needs_presenting(self) -> bool:
        return bool(self.unreadable() or self.presentation())

    def presentation(self) -> list[Presentation]:
        """Columns (and the index) cellxgene 1.3.0 cannot load as written, and what it is shown instead."""
        changes = []
        for column in [self.index_key, *self.columns]:
            if column in self.unreadable():
                continue
            node = self.group[column]
            encoding = encoding_of(node)
            name = "the index" if column == self.index_key else column
            if encoding in NULLABLE:
                changes.append(Presentation(name, encoding, _shown_as(encoding, node)))
            elif encoding == "categorical" and encoding_of(node["categories"]) in NULLABLE:
                changes.append(Presentation(name, "categorical with nullable categories", "categorical"))
        return changes


def _strings_dtype(node) -> bool:
    return isinstance(node, h5py.Dataset) and h5py.check_string_dtype(node.dtype) is not None


def _missing(node: h5py.Group) -> bool:
    return "mask" in node and bool(node["mask"][()].any())


def _shown_as(encoding: str, node: h5py.Group) -> str:
    missing = _missing(node)
    if encoding == "nullable-integer":
        return "decimals, missing values as NaN" if missing else "integers"
    if encoding == "nullable-boolean":
        return "categories 'False'/'True', missing values unassigned" if missing else "booleans"
    return "categories, missing values unassigned" if missing else "text"


def present(series: pd.Series) -> np.ndarray | pd.Categorical:
    """One column in a dtype cellxgene 1.3.0 understands, values unchanged where it can."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = dtype.categories
        if categories.dtype.kind not in "fiub":
            values = series.cat.rename_categories(categories.astype(str).astype(object))
            return pd.Categorical(
                values.array, categories=pd.Index(list(values.cat.categories), dtype=object), ordered=dtype.ordered
            )
        return series.array
    if isinstance(dtype, pd.BooleanDtype):
        if series.isna().any():
            return pd.Categorical(
                series.map({True: "True", False: "False"}).astype(object), categories=["False", "True"]
            )
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(dtype) and isinstance(dtype, pd.api.extensions.ExtensionDtype):
        if series.isna().any():
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        return series.to_numpy(dtype=np.int64)
    if isinstance(dtype, pd.StringDtype) or str(dtype) == "str":
        if series.isna().any():
            return pd.Categorical(series.to_numpy(dtype=object, na_value=None))
        return series.to_numpy(dtype=object)
    return series.to_numpy()


def read_frame(group: h5py.Group):
    """A LazyFrame; FrameError names what is not a dataframe anndata >= 0.7 writes."""
    return LazyFrame(group)


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
