"""cellxgene 1.3.0's `NetEncoding.Matrix` wire format, written with the `flatbuffers` Builder and numpy.

The early front (early_answers.py) answers the page's first requests before cellxgene's code is
imported, so it cannot call cellxgene's encoder (which imports pandas and scipy). This writes the
same tables in the same order as cellxgene's encoder does: each column's typed array, then its
`Column` union, the column vector, the JSON-encoded column index, and the `Matrix` root.

A column arrives already typed (`Typed`): the rules that pick the type are early_answers.py's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
from flatbuffers import Builder

# The `TypedArray` union's members (NetEncoding/TypedArray.py).
FLOAT32 = 1
INT32 = 2
UINT32 = 3
JSON = 5
# The little-endian element type each numeric member stores.
NUMERIC_DTYPES = {FLOAT32: np.dtype("<f4"), INT32: np.dtype("<i4"), UINT32: np.dtype("<u4")}

# Slots of the tables (NetEncoding/Matrix.py, Column.py): Matrix has 7 fields, Column 2.
MATRIX_FIELDS = 7
COLUMN_FIELDS = 2


@dataclass(frozen=True)
class Typed:
    """One column as cellxgene sends it: a numeric member with its values, or JSON text."""

    kind: int
    values: np.ndarray | None = None
    json_text: str | None = None

    @staticmethod
    def of_json(items: list) -> Typed:
        return Typed(JSON, json_text=json_text(items))


def json_text(items: list) -> str:
    """A JSON array of strings and nulls as pandas' `to_json(orient="records")` spells it, so the
    bytes are cellxgene's: compact, every non-ASCII character \\u-escaped (UTF-16 pairs beyond
    the BMP), `/` escaped, DEL left as it is (json.dumps' ensure_ascii would escape it)."""
    text = json.dumps(items, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return NON_ASCII.sub(_escaped, text).replace("/", "\\/")


NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _escaped(match: re.Match) -> str:
    code = ord(match.group())
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _vector(builder: Builder, typed: Typed) -> int:
    if typed.kind == JSON:
        data = np.frombuffer(typed.json_text.encode("utf-8"), dtype=np.uint8)
    else:
        data = np.ascontiguousarray(typed.values, dtype=NUMERIC_DTYPES[typed.kind])
    vector = builder.CreateNumpyVector(data)
    # Every typed array is a one-field table holding its data vector.
    builder.StartObject(1)
    builder.PrependUOffsetTRelativeSlot(0, vector, 0)
    return builder.EndObject()


def _column(builder: Builder, typed: Typed) -> int:
    array = _vector(builder, typed)
    builder.StartObject(COLUMN_FIELDS)
    builder.PrependUint8Slot(0, typed.kind, 0)
    builder.PrependUOffsetTRelativeSlot(1, array, 0)
    return builder.EndObject()


def encode_matrix(n_rows: int, columns: list[tuple[str, Typed]]) -> bytes:
    """The Matrix of these named columns (each `n_rows` long), its column index their names."""
    size = sum(_size_hint(typed) for _, typed in columns) + 1024
    builder = Builder((size + 0x400) & ~0x3FF)
    # Written back to front, as FlatBuffers builds vectors from their end.
    offsets = [_column(builder, typed) for _, typed in reversed(columns)]
    builder.StartVector(4, len(columns), 4)
    for offset in offsets:
        builder.PrependUOffsetTRelative(offset)
    column_vector = builder.EndVector()  # the length StartVector was given (passing it again is deprecated)
    index = _vector(builder, Typed.of_json([name for name, _ in columns]))
    builder.StartObject(MATRIX_FIELDS)
    builder.PrependUint32Slot(0, n_rows, 0)
    builder.PrependUint32Slot(1, len(columns), 0)
    builder.PrependUOffsetTRelativeSlot(2, column_vector, 0)
    builder.PrependUint8Slot(3, JSON, 0)
    builder.PrependUOffsetTRelativeSlot(4, index, 0)
    builder.Finish(builder.EndObject())
    return bytes(builder.Output())


def _size_hint(typed: Typed) -> int:
    if typed.kind == JSON:
        return len(typed.json_text)
    return int(typed.values.size) * 4
