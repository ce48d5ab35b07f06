"""obs/var as anndata < 0.7 wrote them: one HDF5 compound dataset (a numpy structured array).

scanpy's bundled PBMC data (`scanpy.datasets.pbmc68k_reduced`, the dataset of countless
tutorials) is stored so, and anndata 0.12 still reads it. The structure, as that reader takes it:

- the field `index` holds the names (bytes); every other field is a column;
- a column whose `uns/<column>_categories` exists holds integer codes into those categories;
- obsm/varm are structured arrays too, one field per entry (`X_umap` of shape (n, 2)).

`StructuredFrame` answers what `frames.LazyFrame` answers, so the checks, the prepared file
and the merge treat both alike. The whole array is read at once: these files predate
large datasets, and a structured array cannot be read one column at a time anyway.
"""

from __future__ import annotations

from functools import cached_property

import h5py
import numpy as np
import pandas as pd

from galaxy_cellxgene.failure import reading
from galaxy_cellxgene.frames import FrameError, FrameReading, LazyFrame

INDEX_FIELD = "index"


def is_structured(node: h5py.Group | h5py.Dataset) -> bool:
    return isinstance(node, h5py.Dataset) and node.dtype.names is not None


def _decoded(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "S":
        return np.asarray([v.decode("utf-8", "replace") for v in values], dtype=object)
    if values.dtype.kind == "O":
        return np.asarray([v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values], dtype=object)
    return values


class StructuredFrame(FrameReading):
    """The parts of a pandas DataFrame the checks use, for a pre-0.7 obs/var."""

    structured = True  # frames.LazyFrame has no such attribute

    def __init__(self, dataset: h5py.Dataset) -> None:
        reading(dataset)
        if not is_structured(dataset) or dataset.ndim != 1:
            raise FrameError(f"{dataset.name} is neither a dataframe group nor a 1-D structured array")
        names = list(dataset.dtype.names or ())
        if INDEX_FIELD not in names:
            raise FrameError(f"{dataset.name} is a structured array without an 'index' field")
        self.dataset = dataset
        self.index_key = INDEX_FIELD
        self.columns = pd.Index([n for n in names if n != INDEX_FIELD])
        uns = dataset.file.get("uns")
        self._uns = uns if isinstance(uns, h5py.Group) else None

    @cached_property
    def _array(self) -> np.ndarray:
        return self.dataset[()]

    def __len__(self) -> int:
        return int(self.dataset.shape[0])

    def categories_key(self, column: str) -> str | None:
        """The uns entry holding a column's categories, when the column holds codes."""
        key = f"{column}_categories"
        if self._uns is not None and isinstance(self._uns.get(key), h5py.Dataset):
            return key
        return None

    @cached_property
    def index(self) -> pd.Index:
        return pd.Index(_decoded(self._array[INDEX_FIELD]), dtype=object)

    def __getitem__(self, column: str) -> pd.Series:
        values = self._array[column]
        key = self.categories_key(column)
        if key is not None and self._uns is not None:
            categories = _decoded(self._uns[key][()])
            data = pd.Categorical.from_codes(values.astype(np.int64), categories=pd.Index(categories))
            return pd.Series(data, name=column)
        return pd.Series(_decoded(values), name=column)

    def encoding(self, column: str) -> str:
        return "categorical" if self.categories_key(column) else "array"

    def kind(self, column: str) -> tuple[str, int | None, str]:
        values = self._array[column]
        if self.categories_key(column):
            return "categorical", int(np.unique(values[values >= 0]).size), "category"
        if values.dtype.kind in "fiuc":
            return "continuous", None, str(values.dtype)
        if values.dtype.kind == "b":
            return "categorical", 2, "bool"
        return "categorical", int(pd.Series(_decoded(values)).nunique(dropna=True)), "string"

    def _find_unreadable(self) -> dict[str, str]:
        found = {}
        for column in self.columns:
            field = self.dataset.dtype.fields[column][0]  # type: ignore[index]
            if field.shape or field.kind not in "biufOSU":
                found[column] = f"{field.shape or ''} {field} values in a structured array".strip()
        return found

    def presentation(self) -> list:
        return []

    def needs_presenting(self) -> bool:
        """Always: cellxgene's reader is anndata, and the runtime hands it the current on-disk format."""
        return True


def frame_of(node: h5py.Group | h5py.Dataset):
    """The reader for an obs/var element in any on-disk format anndata has written (LazyFrame or StructuredFrame)."""
    return StructuredFrame(node) if is_structured(node) else LazyFrame(node)


def structured_fields(dataset: h5py.Dataset) -> dict[str, tuple[int, ...]]:
    """obsm/varm entries of a structured array: name -> (rows, *field shape)."""
    rows = int(dataset.shape[0])
    return {name: (rows, *dataset.dtype.fields[name][0].shape) for name in dataset.dtype.names or ()}  # type: ignore[index]


def structured_field(dataset: h5py.Dataset, name: str) -> np.ndarray:
    """One obsm entry of a pre-0.7 file, as an (n, k) array."""
    values = dataset.fields(name)[()]
    return values.reshape(len(values), -1)
