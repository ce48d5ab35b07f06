"""The page's first requests answered while cellxgene loads; cellxgene's own app answers once loaded.

A view cannot show a cell until Python has imported pandas, anndata, Flask and cellxgene and
cellxgene has read obs: ~1.5 s of imports at any size, most of a 100k-cell first page. The page
itself needs far less: its HTML and scripts, then `config`, `schema`, each obs column, an
embedding and the gene names, all of which `early_answers.py` reads from the prepared file with
h5py alone. So the view listens as soon as the checks pass, with this front in front of the
gates' inner app (serve.py puts the entry-path and owner gates around it, as around cellxgene's
app): until `hand_over`, it answers those requests itself and holds every other one (a gene, a
label save, `/health`: "healthy" keeps meaning cellxgene is loaded) until cellxgene's app takes
it; after, everything goes to cellxgene's app untouched.
If cellxgene cannot load the dataset, `fail` answers the held requests with the reason.
"""

from __future__ import annotations

import functools
import json
import mimetypes
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs

import jinja2  # Flask's template engine, without Flask

from galaxy_cellxgene import cellxgene_internals as cx
from galaxy_cellxgene.page_fixes import BUNDLE, OBSOLETE_JS, corrected_bundle
from galaxy_cellxgene.web import STATIC_DIR, StartResponse, WsgiApp, respond

API = "/api/v0.2/"
# cellxgene's client sets no timeout of its own; the gene requests wait as long (columns.py).
HOLD_SECONDS = 300.0
# A file name under one of the static folders: no "..", no absolute path, nothing but a name.
STATIC_NAME = re.compile(r"(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)*[A-Za-z0-9_-][A-Za-z0-9._-]*")
# The answers the page asks for before it draws the cells beside the schema and what the schema
# names (seen from chromium); warmed at start so that a request finds its answer made.
FIRST_PAGE = ("config", "colors", "genesets")


class Answers(Protocol):
    """What early_answers.EarlyAnswers offers the front."""

    def answer(self, route: str, query: dict[str, list[str]]) -> tuple[str, bytes] | None: ...

    def release_parts(self) -> None: ...

    def close(self) -> None: ...


class EarlyFront:
    """A WSGI app: the first page from `answers` and files, then cellxgene's app (`hand_over`)."""

    def __init__(
        self, answers: Answers, scripts: Iterable[str], first_embedding: str = "", hold_s: float = HOLD_SECONDS
    ) -> None:
        self.answers = answers
        self.scripts = tuple(scripts)
        self.first_embedding = first_embedding
        self.hold_s = hold_s
        self.app: WsgiApp | None = None
        self.failure: str | None = None
        self.answered_early = 0  # for the tests and the job log: did the front do anything
        self._decided = threading.Event()

    def hand_over(self, app: WsgiApp) -> None:
        self.app = app
        self._decided.set()
        self.answers.close()  # cellxgene answers everything from now on: the early answers' memory goes

    def fail(self, reason: str) -> None:
        self.failure = reason
        self._decided.set()

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if self.app is not None:
            return self.app(environ, start_response)
        early = self._early(environ) if environ.get("REQUEST_METHOD") == "GET" else None
        if early is not None:
            self.answered_early += 1
            return respond(start_response, "200 OK", early[1], early[0])
        self._decided.wait(self.hold_s)
        if self.app is None:
            reason = self.failure or f"cellxgene did not load the dataset within {self.hold_s:.0f} s."
            return respond(start_response, "503 Service Unavailable", reason, "text/plain; charset=utf-8")
        return self.app(environ, start_response)

    def _early(self, environ: dict) -> tuple[str, bytes] | None:
        path = environ.get("PATH_INFO", "")
        try:
            if path.startswith(API):
                return self.answers.answer(path[len(API) :], parse_qs(environ.get("QUERY_STRING", "")))
            if path == "/":
                return "text/html; charset=utf-8", page(self.scripts)
            if path == "/obsolete.js":
                return "text/javascript", OBSOLETE_JS
            if path.startswith("/static/"):
                return cellxgene_static(path[len("/static/") :], self.first_embedding)
            if path.startswith("/galaxy/static/"):
                return static_file(STATIC_DIR, path[len("/galaxy/static/") :])
        except Exception:  # anything unexpected: cellxgene's app answers it once loaded
            return None
        return None


def warm(front: EarlyFront) -> int:
    """Make every answer the page asks for before it draws the cells: the page and its bundle,
    the schema's obs columns, its first embedding and gene names, config and the rest. Run on the
    main thread before cellxgene's imports, which would otherwise share the interpreter (and its
    import locks) with this work; the number of answers made."""
    page(front.scripts)
    for bundle in cx.static_dir().glob("main-*.js"):
        cellxgene_static(bundle.name, front.first_embedding)
    answers = front.answers
    made = sum(answers.answer(route, {}) is not None for route in FIRST_PAGE)
    found = answers.answer("schema", {})
    if found is None:
        return made
    made += 1
    schema = json.loads(found[1])["schema"]
    obs = schema["annotations"]["obs"]
    asks = [("annotations/obs", c["name"]) for c in obs["columns"]]
    asks += [("layout/obs", layout["name"]) for layout in schema["layout"]["obs"][:1]]
    asks += [("annotations/var", schema["annotations"]["var"]["index"])]
    for route, name in asks:
        key = "layout-name" if route.startswith("layout") else "annotation-name"
        made += answers.answer(route, {key: [name]}) is not None
    answers.release_parts()  # the answers are made: keep them, not what they were made from
    return made


@functools.lru_cache(maxsize=4)
def page(scripts: tuple[str, ...]) -> bytes:
    """cellxgene's page, rendered from its own template as its `/` route renders it."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(cx.templates_dir()), autoescape=True)
    html = env.get_template("index.html").render(SCRIPTS=[{"src": s} for s in scripts], INLINE_SCRIPTS=[])
    return html.encode("utf-8")


def cellxgene_static(name: str, first_embedding: str) -> tuple[str, bytes] | None:
    folder = cx.static_dir()
    if BUNDLE.fullmatch(name) and (folder / name).is_file():
        fixed = corrected_bundle(folder / name, first_embedding)
        if fixed is not None:
            return "text/javascript", fixed
    return static_file(folder, name)


def static_file(folder: Path, name: str) -> tuple[str, bytes] | None:
    if not STATIC_NAME.fullmatch(name) or "/." in f"/{name}":
        return None
    path = folder / name
    if not path.is_file():
        return None  # cellxgene's app answers (its 404) once loaded
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind == "application/javascript":
        kind = ("text/javascript" if kind.endswith("javascript") else kind) + "; charset=utf-8"
    return kind, path.read_bytes()
