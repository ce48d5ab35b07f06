"""A gene click answered from the column store, beside Flask: cellxgene's own answer, fewer steps.

Every gene the user clicks is `GET /api/v0.2/data/var?var:<gene-name column>=<gene>` (cellxgene
1.3.0's client; the column is cellxgene's `var_names`). cellxgene answers it through Flask, its
filter parser, a boolean mask over every gene, our column store (columns.py), a FlatBuffers builder
that copies the column twice and Flask-Compress's zstd at level 3: 2-5 ms at 100k cells, of which
the store's read is ~0.01 ms (docs/benchmarks.md, issue 25).

This WSGI layer sits inside the Flask app (`app.wsgi_app`), so behind the entry-path and owner
gates (serve.py): it answers only requests those gates passed. It answers exactly one request
shape: one gene by the gene-name column, from a built store of floating-point values. The answer
is cellxgene's own bytes (a `NetEncoding.Matrix` with one Float32Array column and a one-entry
Int32Array colIndex, laid out by cellxgene's encoder once per session: `MatrixTemplate`), with
cellxgene's headers. Anything else (other columns, several genes, ranges, unknown genes, a store
still being built or failed, dense or integer X served by cellxgene, rows a malformed store gives)
goes to cellxgene unchanged.

Compression: the browser's `Accept-Encoding` decides among zstd (level 1; its fast mode for genes
in over a quarter of the cells), brotli (quality 1), gzip (level 1) and identity. Real users reach
the viewer through Galaxy's proxy over a network, and the layer cannot tell them from a local
client: a 100k-cell answer is 391 KiB raw and ~8 KiB with zstd for the median gene, so it always
compresses what the browser accepts (~0.1 ms for that gene), never sends raw to save that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import numpy as np

from galaxy_cellxgene.web import StartResponse, WsgiApp

log = logging.getLogger("galaxy_cellxgene.clicks")

DATA_VAR_PATH = "/api/v0.2/data/var"
OCTET = "application/octet-stream"
ONE_WEEK = 7 * 24 * 60 * 60  # cellxgene's max-age for data/var GET (server/app/app.py)
ZSTD_LEVEL = 1
# A gene detected in more than this share of cells is mostly float values, which zstd shrinks by a
# fifth at most: its fast mode then (0.4 against 0.9 ms for the densest 100k-cell gene, 369 against
# 305 KiB), where level 1 would cost the most CPU for the least gain.
DENSE_SHARE = 0.25
ZSTD_DENSE_LEVEL = -5
BROTLI_QUALITY = 1
GZIP_LEVEL = 1
FLOAT_KINDS = ("f",)  # cellxgene sends float16/32/64 columns as Float32Array; other kinds: cellxgene


@dataclass(frozen=True)
class MatrixTemplate:
    """cellxgene's FlatBuffers answer for one column of n_rows float32 values, cut around the values."""

    head: bytes  # root offset, tables, colIndex vector: everything before the values
    tail: bytes  # whatever the builder put after them (alignment)
    col_at: int  # where, in head, the int32 colIndex entry is
    n_rows: int

    def encode(self, rows: np.ndarray, values: np.ndarray, col: int) -> bytearray:
        """The answer for column `col` whose non-zero `values` sit at (sorted, unique) `rows`."""
        size = len(self.head) + 4 * self.n_rows + len(self.tail)
        body = bytearray(size)  # zero-filled: every row not listed is 0, as toarray() gives
        body[: len(self.head)] = self.head
        body[self.col_at : self.col_at + 4] = int(col).to_bytes(4, "little", signed=True)
        body[size - len(self.tail) :] = self.tail
        column = np.frombuffer(body, dtype=np.float32, count=self.n_rows, offset=len(self.head))
        column[rows] = values  # float64/float16 -> float32 exactly as cellxgene's astype rounds
        return body


def matrix_template(n_rows: int) -> MatrixTemplate | None:
    """Encode a probe column with cellxgene's encoder and find where its values and colIndex land.
    None when they cannot be found unambiguously (then cellxgene answers every click)."""
    from galaxy_cellxgene import cellxgene_internals as cx

    if n_rows < 4:
        return None
    probe = np.arange(1, n_rows + 1, dtype=np.float32)  # distinct values, found once in the output
    marker = 0x35A7C91D
    encoded = cx.encode_matrix(probe.reshape(-1, 1), np.array([marker]))
    values = probe.tobytes()
    at = encoded.find(values)
    if at < 0 or encoded.find(values, at + 1) >= 0:
        return None
    head, tail = encoded[:at], encoded[at + len(values) :]
    needle = marker.to_bytes(4, "little")
    col_at = head.find(needle)
    if col_at < 0 or head.find(needle, col_at + 1) >= 0 or needle in tail or at % 4:
        return None
    return MatrixTemplate(head, tail, col_at, n_rows)


def choose_encoding(accept_encoding: str) -> str:
    """zstd, else br, else gzip, else identity, as the request's Accept-Encoding allows (q=0 refuses)."""
    allowed: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name.strip():
            allowed[name.strip().lower()] = q
    for name in ("zstd", "br", "gzip"):
        if allowed.get(name, allowed.get("*", 0.0)) > 0:
            return name
    return "identity"


_compressors = threading.local()  # one zstd context per waitress thread and level, reused


def compress(body: bytearray, encoding: str, detected: float = 0.0) -> bytes | bytearray:
    """`body` in `encoding`; `detected`, the share of cells with a value, picks zstd's effort."""
    if encoding == "zstd":
        from backports import zstd

        level = ZSTD_LEVEL if detected <= DENSE_SHARE else ZSTD_DENSE_LEVEL
        compressor = getattr(_compressors, f"level{level}", None)
        if compressor is None:
            compressor = zstd.ZstdCompressor(level)
            setattr(_compressors, f"level{level}", compressor)
        return compressor.compress(body, zstd.ZstdCompressor.FLUSH_FRAME)
    if encoding == "br":
        import brotli

        return brotli.compress(bytes(body), quality=BROTLI_QUALITY)
    if encoding == "gzip":
        import gzip

        return gzip.compress(body, GZIP_LEVEL, mtime=0)
    return body


class GeneIndex:
    """The var index column's name and its gene -> column number map, built on the first click."""

    def __init__(self, adaptor: Any) -> None:
        self.adaptor = adaptor
        self.column: str | None = adaptor.parameters.get("var_names")
        self._map: dict[str, int] | None = None

    def lookup(self, gene: str) -> int | None:
        if self._map is None:
            values = self.adaptor.query_var_array(self.column)
            # cellxgene compares names with np.in1d only for these dtypes; others are its range
            # filter (which selects every gene): leave those to cellxgene.
            if values.dtype.name not in ("object", "category"):
                self._map = {}
            else:
                self._map = {v: i for i, v in enumerate(values.tolist()) if isinstance(v, str)}
        return self._map.get(gene)


@dataclass
class Click:
    """The single gene a request names, by column number; None from `parse` for anything else."""

    col: int

    @staticmethod
    def parse(environ: dict, genes: GeneIndex) -> Click | None:
        # Werkzeug's own parsers, as Flask's request.args and request.accept_mimetypes call them
        # (werkzeug/sansio/request.py), without building a Request around them.
        import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" error handler
        from werkzeug.datastructures import MIMEAccept
        from werkzeug.http import parse_accept_header

        if parse_accept_header(environ.get("HTTP_ACCEPT"), MIMEAccept).best_match([OCTET]) != OCTET:
            return None  # cellxgene's 406
        try:
            query = environ.get("QUERY_STRING", "").encode("latin1").decode()
        except UnicodeError:
            return None
        items = parse_qsl(query, keep_blank_values=True, errors="werkzeug.url_quote")
        if len(items) != 1:
            return None
        key, value = items[0]
        axis, sep, name = key.partition(":")
        # cellxgene unquotes the name and value once more ("double escaping") and reads a comma as a range.
        if axis != "var" or not sep or ":" in name or "," in value or unquote(name) != genes.column:
            return None
        col = genes.lookup(unquote(value))
        return None if col is None else Click(col)


class GeneClicks:
    """WSGI: a single-gene click from the built store; every other request to cellxgene's app."""

    def __init__(
        self,
        app: WsgiApp,
        adaptor: Any,
        store: Any,
        activity: tuple[Callable[[], None], Callable[[], None]],
        cache_headers: bool,
    ) -> None:
        from galaxy_cellxgene import cellxgene_internals as cx

        self.app = app
        self.store = store  # columns.ColumnStore: .matrix once built, .ready
        self.genes = GeneIndex(adaptor)
        self.template = matrix_template(cx.shape(adaptor)[0])
        self.within_limit = not adaptor.server_config.exceeds_limit("column_request_max", 1)
        self.started, self.ended = activity
        self.cache_control = f"public, max-age={ONE_WEEK}" if cache_headers else None
        self.failed = False
        self.answered = 0  # clicks answered here (the tests check it; no lock: a count, not a decision)

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != DATA_VAR_PATH or environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)
        matrix = self.store.matrix if self.store.ready.is_set() else None
        if matrix is None or self.template is None or not self.within_limit or self.failed:
            return self.app(environ, start_response)
        if matrix.dtype.kind not in FLOAT_KINDS:
            return self.app(environ, start_response)
        click = Click.parse(environ, self.genes)
        if click is None:
            return self.app(environ, start_response)
        self.started()  # the idle clock counts clicks, as app.py's before_request does for Flask's
        try:
            encoding = choose_encoding(environ.get("HTTP_ACCEPT_ENCODING", ""))
            answer = self.answer(matrix, click.col)
            payload = None if answer is None else bytes(compress(answer[0], encoding, answer[1]))
        except Exception:  # never a worse answer than cellxgene's: it answers from here on
            log.exception("gene click fast path failed; cellxgene answers gene clicks from now on")
            self.failed = True
            return self.app(environ, start_response)
        finally:
            self.ended()
        if payload is None:
            return self.app(environ, start_response)
        self.answered += 1
        headers = [("Content-Type", OCTET), ("Content-Length", str(len(payload))), ("Vary", "Accept-Encoding")]
        if encoding != "identity":
            headers.append(("Content-Encoding", encoding))
        if self.cache_control:
            headers.append(("Cache-Control", self.cache_control))
        headers.append(("X-Content-Type-Options", "nosniff"))
        start_response("200 OK", headers)
        return [payload]

    def answer(self, matrix: Any, col: int) -> tuple[bytearray, float] | None:
        """cellxgene's uncompressed answer for one column and the share of cells it has a value
        for, or None: cellxgene's own path decides."""
        assert self.template is not None
        rows, values = matrix.gene(col)
        if rows.size and not (rows[0] >= 0 and rows[-1] < self.template.n_rows and _increasing(rows)):
            # Repeated rows (toarray() sums them), unsorted or out-of-range ones (the store raises)
            # come only from a malformed column-major input: cellxgene's path says what they give.
            return None
        return self.template.encode(rows, values, col), rows.size / self.template.n_rows


def _increasing(rows: np.ndarray) -> bool:
    return rows.size < 2 or bool(np.all(rows[1:] > rows[:-1]))


def install(session: Any) -> None:
    """Answer single-gene clicks of `session` (app.Session) from its column store, if it has one."""
    if session.columns is None:
        return  # cellxgene reads X itself (dense or integer X, or the user's backed mode)
    config = session.data_adaptor.server_config
    session.app.wsgi_app = GeneClicks(
        session.app.wsgi_app,
        session.data_adaptor,
        session.columns,
        (session.request_started, session.request_ended),
        bool(config.app__generate_cache_control_headers),
    )
