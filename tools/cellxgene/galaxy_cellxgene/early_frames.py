"""An h5ad's obs and var as cellxgene 1.3.0 shows them, read with h5py alone (no pandas, no anndata).

cellxgene reads the file with anndata, then renames: with no `--obs-names`/`--var-names` the
index becomes a first column named `name_0` (or `name_1`... when taken), else the chosen column
stands for the index, which is dropped. Only the encodings whose reading is unambiguous are
read here: numeric and boolean arrays, string arrays, categoricals (anndata >= 0.8's group and
0.7's codes with a `categories` reference). Anything else (nullable arrays, fixed-length byte
strings, a 2-D column, an odd index) raises `Unanswerable`: the early front then waits for cellxgene.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

FRAME_VERSIONS = ("0.1.0", "0.2.0")
PLAIN_ENCODINGS = (None, "array", "string-array")


class Unanswerable(Exception):
    """This file holds something whose cellxgene answer is not certain here."""


@dataclass(frozen=True)
class Column:
    """One column: `values` (numeric or str objects), or a categorical's `codes` and `categories`."""

    name: str
    values: np.ndarray | None = None
    codes: np.ndarray | None = None
    categories: np.ndarray | None = None

    @property
    def is_categorical(self) -> bool:
        return self.codes is not None

    @property
    def is_string(self) -> bool:
        return self.values is not None and self.values.dtype.kind == "O"


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise Unanswerable(f"not a name: {value!r}")


def _attr_text(obj: h5py.HLObject, key: str) -> str | None:
    value = obj.attrs.get(key)
    return None if value is None else _text(value)


def plain_array(obj: h5py.HLObject) -> np.ndarray:
    """A 1-D dataset as anndata reads it: str objects for variable-length strings, else numbers."""
    if not isinstance(obj, h5py.Dataset) or obj.ndim != 1:
        raise Unanswerable(f"{obj.name} is not a 1-D dataset")
    if _attr_text(obj, "encoding-type") not in PLAIN_ENCODINGS:
        raise Unanswerable(f"{obj.name} has an unknown encoding")
    string_info = h5py.check_string_dtype(obj.dtype)
    if string_info is not None:
        if string_info.length is not None:  # fixed-length bytes: anndata's reading varies by version
            raise Unanswerable(f"{obj.name} holds fixed-length strings")
        return np.asarray(obj.asstr()[()], dtype=object)
    if obj.dtype.kind not in "biuf" or obj.dtype.names is not None:
        raise Unanswerable(f"{obj.name} has dtype {obj.dtype}")
    values = obj[()]
    return values.astype(values.dtype.newbyteorder("="), copy=False)


def read_column(obj: h5py.HLObject, name: str, length: int) -> Column:
    if isinstance(obj, h5py.Group):
        if _attr_text(obj, "encoding-type") != "categorical" or set(obj.keys()) != {"codes", "categories"}:
            raise Unanswerable(f"{obj.name}: an encoding read only by cellxgene")
        column = Column(name, codes=plain_array(obj["codes"]), categories=plain_array(obj["categories"]))
    elif isinstance(obj, h5py.Dataset) and "categories" in obj.attrs:  # anndata 0.7's categorical
        reference = obj.attrs["categories"]
        if not isinstance(reference, h5py.Reference):
            raise Unanswerable(f"{obj.name}: categories are not a reference")
        column = Column(name, codes=plain_array(obj), categories=plain_array(obj.file[reference]))
    else:
        column = Column(name, values=plain_array(obj))
    _check(column, length)
    return column


def _check(column: Column, length: int) -> None:
    if column.is_categorical:
        codes, categories = column.codes, column.categories
        if codes.dtype.kind not in "iu" or len(codes) != length:
            raise Unanswerable(f"{column.name}: codes of dtype {codes.dtype}")
        if len(codes) and (codes.min() < -1 or codes.max() >= len(categories)):
            raise Unanswerable(f"{column.name}: codes outside the categories")
        if len(set(categories.tolist())) != len(categories):
            raise Unanswerable(f"{column.name}: repeated categories")
    elif len(column.values) != length:
        raise Unanswerable(f"{column.name}: {len(column.values)} values for {length} rows")


class Frame:
    """obs or var: the column names cellxgene presents, in its order; columns read on demand."""

    def __init__(self, group: h5py.HLObject, chosen_names: str | None) -> None:
        if not isinstance(group, h5py.Group) or _attr_text(group, "encoding-type") != "dataframe":
            raise Unanswerable(f"{getattr(group, 'name', group)} is not an anndata dataframe")
        if _attr_text(group, "encoding-version") not in FRAME_VERSIONS:
            raise Unanswerable(f"{group.name}: an unknown dataframe version")
        self.group = group
        self.index_key = _attr_text(group, "_index")
        order = group.attrs.get("column-order")
        stored = [_text(name) for name in np.atleast_1d(order)] if order is not None and np.size(order) else []
        members = [key for key in group if key != "__categories"]
        if len(set(stored)) != len(stored) or self.index_key in stored or self.index_key not in members:
            raise Unanswerable(f"{group.name}: an index or column order anndata would not read as written")
        if set(members) != {*stored, self.index_key}:
            raise Unanswerable(f"{group.name}: members outside the column order")
        self.length = len(plain_array_shape(group[self.index_key]))
        self.stored = stored
        if chosen_names is None:
            # cellxgene's own rule: the first free name_<n> names the index, put first.
            suffix = 0
            while f"name_{suffix}" in stored:
                suffix += 1
            self.index_name: str | None = f"name_{suffix}"
            self.names = [self.index_name, *stored]
        elif chosen_names in stored:
            self.index_name = None
            self.names = list(stored)
        else:
            raise Unanswerable(f"{chosen_names} is not a column of {group.name}")
        self.names_column = self.index_name or chosen_names

    def holds_strings(self, name: str) -> bool:
        """A plain variable-length string column (or the index): its schema type needs no read."""
        if name not in self.names:
            raise Unanswerable(f"no column {name}")
        obj = self.group[self.index_key if name == self.index_name else name]
        return (
            isinstance(obj, h5py.Dataset)
            and obj.ndim == 1
            and "categories" not in obj.attrs
            and _attr_text(obj, "encoding-type") in PLAIN_ENCODINGS
            and (info := h5py.check_string_dtype(obj.dtype)) is not None
            and info.length is None
        )

    def column(self, name: str) -> Column:
        if name not in self.names:
            raise Unanswerable(f"no column {name}")
        if name == self.index_name:
            values = plain_array(self.group[self.index_key])
            if values.dtype.kind != "O":
                raise Unanswerable("the index does not hold strings")
            return Column(name, values=values)
        return read_column(self.group[name], name, self.length)


def plain_array_shape(obj: h5py.HLObject) -> range:
    """The rows of an index dataset, without reading it."""
    if not isinstance(obj, h5py.Dataset) or obj.ndim != 1:
        raise Unanswerable(f"{obj.name}: the index is not a 1-D dataset")
    return range(obj.shape[0])


def matrix_dtype(f: h5py.File) -> np.dtype:
    """X's element type, dense or sparse."""
    x = f.get("X")
    if isinstance(x, h5py.Dataset) and x.ndim == 2:
        return x.dtype
    if isinstance(x, h5py.Group) and _attr_text(x, "encoding-type") in ("csr_matrix", "csc_matrix"):
        data = x.get("data")
        if isinstance(data, h5py.Dataset):
            return data.dtype
    raise Unanswerable("X is missing or of an unknown kind")


def embedding(f: h5py.File, name: str, n_obs: int) -> np.ndarray | None:
    """obsm['X_<name>'] when cellxgene would accept it as a layout, else None."""
    obsm = f.get("obsm")
    key = f"X_{name}"
    if not isinstance(obsm, h5py.Group) or key not in obsm:
        return None
    obj = obsm[key]
    if not isinstance(obj, h5py.Dataset):
        return None  # a data frame or sparse matrix: not an ndarray, cellxgene skips it
    if _attr_text(obj, "encoding-type") not in (None, "array"):
        raise Unanswerable(f"obsm/{key} has an unknown encoding")
    if obj.ndim != 2 or obj.dtype.kind not in "fiu" or obj.shape[0] != n_obs or obj.shape[1] < 2:
        return None
    values = obj[()]
    values = values.astype(values.dtype.newbyteorder("="), copy=False)
    if np.any(np.isinf(values)) or np.all(np.isnan(values)):
        return None
    return values


def obsm_names(f: h5py.File) -> list[str]:
    obsm = f.get("obsm")
    if obsm is None:
        return []
    if not isinstance(obsm, h5py.Group):
        raise Unanswerable("obsm is not a group")
    return list(obsm.keys())


def color_lists(f: h5py.File) -> dict[str, list[str]]:
    """uns['<column>_colors'] string arrays, by column name; anything else there is unanswerable."""
    uns = f.get("uns")
    if uns is None:
        return {}
    if not isinstance(uns, h5py.Group):
        raise Unanswerable("uns is not a group")
    found = {}
    for key in uns:
        if key.endswith("_colors"):
            values = plain_array(uns[key])
            if values.dtype.kind != "O":
                raise Unanswerable(f"uns/{key} does not hold color strings")
            found[key[: -len("_colors")]] = list(values)
    return found
