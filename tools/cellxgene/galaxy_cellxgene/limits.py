"""Bounds on what one request can make the viewer hold, and on what it may overwrite.

cellxgene 1.3.0 inflates a label save with a bare `zlib.decompress` (a 1 MB body can inflate to
gigabytes), reads any body size, and treats a matrix it cannot make sense of as "no categories",
which would replace the user's last good save with nothing. Here every body has a ceiling set
by what the UI can legitimately send for this dataset, a label save is inflated in pieces up to
its own ceiling, and a buffer that is not a well-formed FlatBuffers table is refused before
cellxgene decodes it, so the outputs keep the last good save.
"""

from __future__ import annotations

import json
import struct
import zlib

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from galaxy_cellxgene import cellxgene_internals as cx
from galaxy_cellxgene.web import MIB, no_store

# A label save carries one JSON-encoded column per user category, one entry per cell: 1 KiB a
# cell leaves room for about 30 categories of 30-character labels; the fixed part covers
# FlatBuffers framing and small datasets. 500,000 cells: 16 MiB + 488 MiB.
LABELS_FIXED_BYTES = 16 * MIB
LABELS_BYTES_PER_CELL = 1024
# Gene sets travel as JSON: 16 MiB is hundreds of thousands of gene entries.
GENE_SETS_MAX_BYTES = 16 * MIB
# Everything else the UI sends is a filter (cell index ranges) or nothing.
OTHER_MAX_BYTES = 64 * MIB
INFLATE_CHUNK = 1 * MIB

_LIMIT_KEY = "GALAXY_CELLXGENE_LABEL_BYTES"


class RequestRefused(HTTPException):
    """A refusal with its reason as JSON, which cellxgene's handlers pass through unchanged."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        response = no_store(Response(json.dumps({"message": message}), status=code, mimetype="application/json"))
        super().__init__(description=message, response=response)


def label_bytes_limit(n_cells: int) -> int:
    """The most bytes a label save for `n_cells` cells may inflate to (and be sent as)."""
    return LABELS_FIXED_BYTES + LABELS_BYTES_PER_CELL * max(0, int(n_cells))


def body_limit(endpoint: str | None, n_cells: int) -> int:
    if endpoint == cx.LABELS_ENDPOINT:
        return label_bytes_limit(n_cells)
    if endpoint == cx.GENE_SETS_ENDPOINT:
        return GENE_SETS_MAX_BYTES
    return OTHER_MAX_BYTES


def bounded_inflate(data: bytes, limit: int) -> bytes:
    """zlib-inflate `data`, refusing (413) as soon as the output would pass `limit` bytes."""
    inflater = zlib.decompressobj()
    pieces: list[bytes] = []
    size = 0
    pending = data
    try:
        while pending:
            piece = inflater.decompress(pending, INFLATE_CHUNK)
            size += len(piece)
            if size > limit:
                raise RequestRefused(413, _too_large("inflates to", limit))
            pieces.append(piece)
            pending = inflater.unconsumed_tail
        rest = inflater.flush()
    except zlib.error as err:
        raise RequestRefused(400, f"The label save is not zlib-compressed data ({err}); nothing was saved.") from err
    if size + len(rest) > limit:
        raise RequestRefused(413, _too_large("inflates to", limit))
    if not inflater.eof:
        raise RequestRefused(400, "The label save is truncated (incomplete zlib stream); nothing was saved.")
    pieces.append(rest)
    return b"".join(pieces)


def flatbuffer_problem(buffer: bytes) -> str | None:
    """Why `buffer` cannot be a FlatBuffers table (the root of cellxgene's Matrix), or None.

    The FlatBuffers reader trusts its offsets: an all-zero buffer reads as an empty matrix, which
    cellxgene would save as "every category deleted".
    """
    size = len(buffer)
    if size < 8:
        return f"it is {size} bytes long, shorter than any FlatBuffers table"
    (root,) = struct.unpack_from("<I", buffer, 0)
    if root < 4 or root + 4 > size:
        return f"its root offset {root} points outside the {size}-byte buffer"
    (vtable_distance,) = struct.unpack_from("<i", buffer, root)
    vtable = root - vtable_distance
    if vtable < 0 or vtable + 4 > size:
        return "its table's vtable lies outside the buffer"
    vtable_size, table_size = struct.unpack_from("<HH", buffer, vtable)
    if vtable_size < 4 or vtable_size % 2 or vtable + vtable_size > size or root + table_size > size:
        return "its table's vtable is malformed"
    return None


def _too_large(what: str, limit: int) -> str:
    return (
        f"The request {what} more than {limit / MIB:.0f} MiB, more than this dataset's labels can need; "
        "it was refused and nothing was saved (your last save is kept)."
    )


def _inflate_label_save(data: bytes) -> bytes:
    """Stands in for cellxgene's `server.common.rest.inflate`, used only by the label save."""
    limit = current_app.config.get(_LIMIT_KEY) or label_bytes_limit(0)
    buffer = bounded_inflate(bytes(data), limit)
    problem = flatbuffer_problem(buffer)
    if problem:
        raise RequestRefused(400, f"The label save is not a cellxgene matrix: {problem}. Nothing was saved.")
    return buffer


def install(app: Flask, n_cells: int) -> None:
    """Bound every request body of `app` and make cellxgene's label save inflate within bounds."""
    app.config[_LIMIT_KEY] = label_bytes_limit(n_cells)
    cx.replace_label_inflater(_inflate_label_save)  # the bound is read from the app serving the request

    @app.before_request
    def bound_body() -> None:
        limit = body_limit(request.endpoint, n_cells)
        if request.content_length is not None and request.content_length > limit:
            raise RequestRefused(413, _too_large("is", limit))
        # Enforced by Werkzeug while reading, also for bodies without a Content-Length.
        request.max_content_length = limit
