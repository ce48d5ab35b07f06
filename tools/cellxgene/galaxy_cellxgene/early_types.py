"""cellxgene 1.3.0's type rules for the early answers (early_answers.py): which wire array and
schema type a column gets, an embedding's normalisation, X's schema type, a colour
(server/common/utils/type_conversion_utils.py and its callers), in numpy only."""

from __future__ import annotations

import numpy as np

from galaxy_cellxgene.early_fbs import FLOAT32, INT32, JSON, UINT32, Typed, json_text
from galaxy_cellxgene.early_frames import Column, Unanswerable

INT32_RANGE = np.iinfo(np.int32)
HEX_COLOR = frozenset("0123456789abcdefABCDEF")


def numeric_type(values: np.ndarray) -> tuple[str, Typed]:
    """The schema type and wire array of numbers, as cellxgene picks them."""
    kind = values.dtype.kind
    if kind == "b":
        return "boolean", Typed(UINT32, values.astype(np.uint32))
    if kind in "iu":
        fits = np.can_cast(values.dtype, np.int32) or values.size == 0
        if not fits and not (values.min() >= INT32_RANGE.min and values.max() <= INT32_RANGE.max):
            raise Unanswerable("integers beyond int32: cellxgene refuses the dataset")
        return "int32", Typed(INT32, values.astype(np.int32))
    if kind == "f" and values.dtype.itemsize <= 8:
        return "float32", Typed(FLOAT32, values.astype(np.float32))
    raise Unanswerable(f"values of dtype {values.dtype}")


def column_type(column: Column) -> tuple[dict, Typed]:
    """(schema type hint, wire array) of one column."""
    if column.is_categorical:
        return _categorical_type(column)
    if column.is_string:
        return {"type": "string"}, Typed.of_json(column.values.tolist())
    name, typed = numeric_type(column.values)
    return {"type": name}, typed


def _categorical_type(column: Column) -> tuple[dict, Typed]:
    codes, categories = column.codes, column.categories
    kind = categories.dtype.kind
    if kind == "O":
        labels = categories.tolist()
        return {"type": "categorical", "categories": labels}, Typed(JSON, json_text=_category_json(labels, codes))
    if kind not in "iuf":
        raise Unanswerable(f"{column.name}: categories of dtype {categories.dtype}")
    # pandas' to_numpy: the categories' values, upcast to float with NaN where a code is missing.
    missing = codes < 0
    values = categories[np.where(missing, 0, codes)] if len(categories) else np.zeros(len(codes), categories.dtype)
    if missing.any():
        values = values.astype(np.float64 if kind in "iu" else categories.dtype)
        values[missing] = np.nan
    _, typed = numeric_type(values)
    return {"type": "categorical"}, typed


def _category_json(labels: list[str], codes: np.ndarray) -> str:
    """The JSON array of each cell's category (null where missing): each category encoded once,
    then picked per cell, the same text as encoding the whole list (one element never depends
    on another) at a fraction of the cost on 100k cells."""
    encoded = np.array([json_text([label])[1:-1] for label in labels] + ["null"], dtype=object)
    return "[" + ",".join(encoded[np.where(codes < 0, len(labels), codes)].tolist()) + "]"


def x_type(dtype: np.dtype) -> str:
    """X's schema type: cellxgene casts a matrix narrower than float32 to float32 (or refuses it)."""
    if dtype.kind == "f":
        return "float32"
    if dtype.kind in "iu" and dtype < np.dtype(np.float32):
        return "float32"
    if dtype.kind in "iu" and np.can_cast(dtype, np.int32):
        return "int32"
    raise Unanswerable(f"X of dtype {dtype}")


def normalized_layout(values: np.ndarray) -> np.ndarray:
    """cellxgene's normalisation of an embedding's two first dimensions, the same numpy steps in
    the same dtypes (so the same float32 bits): scaled isotropically, centred in [0, 1]."""
    low = np.nanmin(values, axis=0)
    high = np.nanmax(values, axis=0)
    scale = np.amax(high - low)
    layout = (values - low) / scale
    return (layout + (0.5 - ((high - low) / scale / 2))).astype(np.float32)


def hex_color(value: str) -> str:
    if len(value) == 7 and value[0] == "#" and set(value[1:]) <= HEX_COLOR:
        return value.lower()
    raise Unanswerable(f"color {value!r}: not a hex triplet (cellxgene's named colors are not mirrored)")
