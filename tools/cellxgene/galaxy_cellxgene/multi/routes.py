"""The list tool's WSGI dispatcher: the landing page, status and finish, and each dataset's own
cellxgene app mounted under `/d/<slug>/` (the prefix moved to SCRIPT_NAME, as entry_path.py does
for the entry point). cellxgene's page derives its API base from `location.pathname`, so
everything it requests stays under its prefix.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import quote

from galaxy_cellxgene.multi.datasets import Dataset, DatasetUnavailable
from galaxy_cellxgene.multi.landing import error_page
from galaxy_cellxgene.multi.pool import DatasetPool
from galaxy_cellxgene.web import (
    FINISH_REFUSED,
    STATIC_DIR,
    StartResponse,
    finish_allowed,
    is_quiet,
    mounted,
    redirect_to_slash,
    request_headers,
    respond,
)

JSON = "application/json"
# What the landing page loads from the runtime's own scripts (the viewers load theirs through cellxgene).
LANDING_SCRIPTS = frozenset({"finish.js"})


@dataclass
class Dispatcher:
    """Routes of a MultiSession; each collaborator is the session's own (multi/session.py)."""

    pool: DatasetPool
    landing: Callable[[], str]
    status: Callable[[], dict]
    finish: Callable[[str], dict]
    touch: Callable[[], None]

    def __post_init__(self) -> None:
        self.by_slug = {d.slug: d for d in self.pool.datasets}

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if not is_quiet(path):
            self.touch()
        if path.startswith("/d/"):
            return self._dataset_route(path[3:], environ, start_response)
        if path == "/" and method in ("GET", "HEAD"):
            return respond(start_response, "200 OK", self.landing(), "text/html; charset=utf-8")
        if path == "/health":
            body = json.dumps({"status": "pass", "datasets": len(self.pool.datasets)})
            return respond(start_response, "200 OK", body, JSON)
        if path == "/galaxy/status":
            return respond(start_response, "200 OK", json.dumps(self.status()), JSON)
        if path == "/galaxy/finish" and method == "POST":
            if not finish_allowed(request_headers(environ)):
                return _refuse_finish(start_response)
            return respond(start_response, "200 OK", json.dumps(self.finish("finish button")), JSON)
        name = path.removeprefix("/galaxy/static/")
        if name in LANDING_SCRIPTS and method in ("GET", "HEAD"):
            script = (STATIC_DIR / name).read_bytes()
            return respond(start_response, "200 OK", script, "text/javascript; charset=utf-8")
        return respond(start_response, "404 Not Found", "Not found", "text/plain; charset=utf-8")

    def _dataset_route(self, rest: str, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        slug, slash, tail = rest.partition("/")
        entry = self.by_slug.get(slug)
        if entry is None:
            return respond(start_response, "404 Not Found", "No such dataset in this session", "text/plain")
        if not slash:
            return redirect_to_slash(start_response, environ, quote(slug))
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if tail == "galaxy/finish" and method == "POST":
            # The page's "Finish and save to Galaxy" ends the whole session, every dataset.
            if not finish_allowed(request_headers(environ)):
                return _refuse_finish(start_response)
            whole = self.finish("finish button")
            mine = next(r for r in whole["datasets"] if r["slug"] == slug)
            body = {**whole, **mine, "finish_error": whole["finish_error"]}
            return respond(start_response, "200 OK", json.dumps(body), JSON)
        return self._to_dataset(entry, environ, start_response, "/" + tail)

    def _to_dataset(self, entry: Dataset, environ: dict, start_response: StartResponse, path: str) -> Iterable[bytes]:
        try:
            session = self.pool.acquire(entry)
        except DatasetUnavailable as err:
            return respond(start_response, f"{err.status} Unavailable", error_page(entry, err.message), "text/html")
        try:
            result = session.app(mounted(environ, "/d/" + entry.slug, path), start_response)
        except BaseException:
            self.pool.release(entry)
            raise
        return _Closing(result, lambda: self.pool.release(entry))


def _refuse_finish(start_response: StartResponse) -> list[bytes]:
    return respond(start_response, "403 Forbidden", json.dumps({"message": FINISH_REFUSED}), JSON)


class _Closing:
    """Passes the app's response through and runs `on_close` once the server is done with it:
    a dataset counts as in use until its last byte has been sent."""

    def __init__(self, inner: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self._inner = inner
        self._on_close = on_close
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._inner)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()
