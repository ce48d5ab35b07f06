"""Several datasets in one session: a landing page, and one cellxgene app per dataset.

cellxgene 1.3.0 serves one dataset per app. Rather than one process per dataset (each paying
cellxgene's start-up and a port, and a Galaxy entry point each), one WSGI dispatcher mounts
each dataset's own `build_session()` app under `/d/<slug>/` and strips that prefix
(SCRIPT_NAME/PATH_INFO). cellxgene's page derives its API base from `location.pathname`, so
everything it requests stays under its prefix.

A dataset is loaded on first use and dropped again after idling, or when loading another one
would exceed the memory budget (least recently used first). Dropping loses nothing: every
save is already in that dataset's Galaxy output (outputs.py writes it within the request),
and a reload resumes from those outputs as "previous annotations".

`MultiSession` implements serve.ServedSession, as `Session` does, so waitress, registration,
signals and the idle timeout
are the single-dataset code, unchanged.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gc
import hashlib
import html
import json
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import h5py

from galaxy_cellxgene.app import FINISH_REFUSED, Paths, Session, StartupError, build_session, finish_allowed
from galaxy_cellxgene.joblog import say
from galaxy_cellxgene.settings import ViewerOptions

log = logging.getLogger("galaxy_cellxgene.multi")

MAX_NAME_LENGTH = 100
# What a loaded cellxgene app costs besides its arrays (Flask app, caches, pandas frames).
APP_OVERHEAD_BYTES = 40 * 1024 * 1024
# Variable-length strings are Python objects once loaded: pointer, header and text.
STRING_BYTES = 64
NAV_SCRIPT = "galaxy/static/multi.js"
QUIET_PATHS = ("/health", "/galaxy/status")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

StartResponse = Callable[..., object]
Environ = dict


# --------------------------------------------------------------------------------------------
# Names: Galaxy element identifiers are user text; file names and URL segments must not be.


def safe_name(name: str) -> str:
    """A file-name and URL-segment safe form of `name`: ASCII letters, digits, `_ . -`.

    Accents are folded (Zellen_Müller -> Zellen_Muller), every other run of characters becomes
    one `_`, and leading/trailing dots and separators go (no `..`, no hidden files).
    """
    folded = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    text = _UNSAFE.sub("_", folded).strip("._-")[:MAX_NAME_LENGTH].strip("._-")
    return text or "dataset"


def unique_safe_names(names: Iterable[str]) -> list[str]:
    """One safe name per input, all distinct (case-insensitively), stable for the same input.

    A name that is already safe and unused is kept as it is, so Galaxy's output collections
    carry the user's own element identifiers; otherwise a short hash of the original name
    tells apart names that fold to the same text (`a/b` and `a?b`).
    """
    result: list[str] = []
    used: set[str] = set()
    for name in names:
        base = safe_name(name)
        candidate = base
        if candidate.lower() in used:
            digest = hashlib.sha256(str(name).encode("utf-8", "surrogatepass")).hexdigest()[:8]
            candidate = f"{base[: MAX_NAME_LENGTH - 9]}_{digest}"
        counter = 2
        stem = candidate
        while candidate.lower() in used:  # the very same name twice (possible on the command line)
            candidate = f"{stem[: MAX_NAME_LENGTH - 6]}_{counter}"
            counter += 1
        used.add(candidate.lower())
        result.append(candidate)
    return result


# --------------------------------------------------------------------------------------------
# What a dataset is, read cheaply from its file.


@dataclass(frozen=True)
class FileFacts:
    n_obs: int
    n_vars: int
    embeddings: tuple[str, ...]
    cost_bytes: int  # estimated memory once cellxgene has loaded it


def _node_bytes(node: h5py.Dataset) -> int:
    if node.dtype.kind in ("O", "S", "U"):
        return int(node.size) * STRING_BYTES
    return int(node.size) * int(node.dtype.itemsize)


def _group_bytes(group: h5py.Group | h5py.Dataset) -> int:
    if isinstance(group, h5py.Dataset):
        return _node_bytes(group)
    total = 0

    def add(_name: str, node: object) -> None:
        nonlocal total
        if isinstance(node, h5py.Dataset):
            total += _node_bytes(node)

    group.visititems(add)
    return total


def read_facts(path: Path, layer: str | None = None) -> FileFacts:
    """Shape, embeddings and a memory estimate from HDF5 metadata alone (no array is read)."""
    with h5py.File(path, "r") as f:
        matrix = f[f"layers/{layer}"] if layer and f"layers/{layer}" in f else f["X"]
        if isinstance(matrix, h5py.Dataset):
            n_obs, n_vars = (int(n) for n in matrix.shape)
        else:
            n_obs, n_vars = (int(n) for n in matrix.attrs["shape"])
        obsm = f.get("obsm")
        embeddings = tuple(sorted(k for k in obsm if k.startswith("X_"))) if obsm is not None else ()
        cost = _group_bytes(matrix) + APP_OVERHEAD_BYTES
        for key in ("obs", "var", "obsm"):
            if key in f:
                cost += _group_bytes(f[key])
    return FileFacts(n_obs, n_vars, embeddings, cost)


# --------------------------------------------------------------------------------------------
# One dataset of the session.


# Output names of the tool XML's collections, as Galaxy's tool-provided metadata (galaxy.json) names them.
GALAXY_OUTPUTS = {"annotations": ("csv", ".csv"), "gene_sets": ("csv", ".csv"), "annotated": ("h5ad", ".h5ad")}


@dataclass
class OutputDirs:
    annotations: Path
    gene_sets: Path
    merged: Path | None
    work: Path
    previous_annotations: Path | None = None
    previous_gene_sets: Path | None = None
    # Galaxy's tool-provided metadata file: lets each output element keep the user's own element
    # identifier ("day 7"), where file names must be safe ("day_7.csv").
    galaxy_json: Path | None = None

    def folder(self, output: str) -> Path | None:
        return {"annotations": self.annotations, "gene_sets": self.gene_sets, "annotated": self.merged}[output]

    def create(self) -> None:
        for folder in (self.annotations, self.gene_sets, self.merged, self.work):
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)


@dataclass
class Dataset:
    name: str  # the user's element identifier, shown as is (escaped)
    slug: str  # safe: URL segment and output file stem
    source: Path
    facts: FileFacts | None
    problems: list[str] = field(default_factory=list)  # errors: the dataset cannot be opened
    session: Session | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while loading/unloading
    active: int = 0  # requests being answered (guarded by the manager lock)
    last_used: float = 0.0
    loads: int = 0
    unloads: int = 0
    load_seconds: float | None = None
    load_error: str | None = None
    merged_written: bool = False
    # Save counters live in each session; these carry them across unloads for the job log.
    past_label_saves: int = 0
    past_gene_set_saves: int = 0

    @property
    def usable(self) -> bool:
        return self.facts is not None and not self.problems

    @property
    def cost(self) -> int:
        return self.facts.cost_bytes if self.facts else 0


class DatasetUnavailable(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class MultiSession:
    def __init__(
        self,
        datasets: list[Dataset],
        dirs: OutputDirs,
        options: ViewerOptions,
        title: str | None = None,
        memory_budget_bytes: int | None = None,
        unload_after: float | None = None,
        loader: Callable[[Paths, ViewerOptions], Session] = build_session,
    ) -> None:
        self.datasets = datasets
        self.by_slug = {d.slug: d for d in datasets}
        self.dirs = dirs
        self.options = options
        self.title = title or "cellxgene"
        self.memory_budget_bytes = memory_budget_bytes
        self.unload_after = unload_after
        self._loader = loader
        self._lock = threading.Lock()  # bookkeeping only; never held while loading
        self._finish_lock = threading.Lock()
        self.finished = threading.Event()
        self.finish_reason: str | None = None
        self.finish_errors: list[str] = []
        self._activity = time.monotonic()
        self.app = self.wsgi
        self._listing_lock = threading.Lock()
        dirs.create()
        self.write_galaxy_json()
        if unload_after is not None:
            threading.Thread(target=self._reaper, name="unload-idle", daemon=True).start()

    # ---- what serve() reads -------------------------------------------------------------

    @property
    def last_activity(self) -> float:
        return self._activity

    def touch(self) -> None:
        self._activity = time.monotonic()

    def idle_for(self) -> float:
        """Seconds with nothing happening anywhere: the landing page or any open dataset."""
        idle = time.monotonic() - self._activity
        for dataset in self.datasets:
            session = dataset.session
            if session is not None:
                idle = min(idle, session.idle_for())
        return idle

    def status(self) -> dict:
        rows = [self._dataset_status(d) for d in self.datasets]
        return {
            "title": self.title,
            "datasets": rows,
            "loaded": [d.slug for d in self.datasets if d.session is not None],
            "loaded_cost_mb": round(self._loaded_cost() / 2**20, 1),
            "memory_budget_mb": None
            if self.memory_budget_bytes is None
            else round(self.memory_budget_bytes / 2**20, 1),
            "label_saves": sum(r["label_saves"] for r in rows),
            "gene_set_saves": sum(r["gene_set_saves"] for r in rows),
            "finished": self.finished.is_set(),
            "finish_reason": self.finish_reason,
            "finish_error": "; ".join(self.finish_errors) or None,
        }

    def hold_saves(self, timeout: float) -> bool:
        """Every loaded dataset's save lock, so a save in flight anywhere completes its rename
        before the process exits (serve.py's SIGTERM handler; never released)."""
        deadline = time.monotonic() + timeout
        held = True
        for entry in self.datasets:
            session = entry.session
            if session is not None:
                held = session.hold_saves(max(0.0, deadline - time.monotonic())) and held
        return held

    def finish(self, reason: str) -> dict:
        """Finish every dataset: freeze saves, write each opened dataset's merged h5ad. Idempotent."""
        with self._finish_lock:
            if self.finish_reason is None:
                self.finish_reason = reason
                for entry in self.datasets:
                    with entry.lock:  # a load in progress completes first; none starts after
                        self._finish_one(entry, reason)
                self.write_galaxy_json()
                self.finished.set()
        return self.status()

    def write_galaxy_json(self) -> None:
        """List the output files that exist, each under its user-given name, for Galaxy.

        Rewritten (atomically) whenever files appear, so after a Stop Galaxy finds a listing of
        exactly the files on disk; a merged h5ad is listed only once it is complete.
        """
        if self.dirs.galaxy_json is None:
            return
        from galaxy_cellxgene.durable import atomic_write

        with self._listing_lock:
            listing = {}
            for output, (ext, suffix) in GALAXY_OUTPUTS.items():
                folder = self.dirs.folder(output)
                elements = [
                    {"name": d.name, "filename": f"{d.slug}{suffix}", "ext": ext}
                    for d in self.datasets
                    if folder is not None and (folder / f"{d.slug}{suffix}").is_file()
                ]
                listing[output] = {"elements": elements}
            atomic_write(self.dirs.galaxy_json, json.dumps(listing, ensure_ascii=False))

    # ---- loading and unloading ----------------------------------------------------------

    def paths_for(self, entry: Dataset) -> Paths:
        dirs = self.dirs
        previous_labels: Path | None
        previous_sets: Path | None
        if entry.loads > 0:
            # A reload: the outputs hold the last save of this session.
            previous_labels = dirs.annotations / f"{entry.slug}.csv"
            previous_sets = dirs.gene_sets / f"{entry.slug}.csv"
        else:
            previous_labels = _existing(dirs.previous_annotations, entry.slug)
            previous_sets = _existing(dirs.previous_gene_sets, entry.slug)
        work = dirs.work / entry.slug
        return Paths(
            source=entry.source,
            prepared=work / "dataset.h5ad",
            work_dir=work,
            annotations_out=dirs.annotations / f"{entry.slug}.csv",
            gene_sets_out=dirs.gene_sets / f"{entry.slug}.csv",
            merged_out=dirs.merged / f"{entry.slug}.h5ad" if dirs.merged is not None else None,
            previous_annotations=previous_labels if previous_labels and previous_labels.exists() else None,
            previous_gene_sets=previous_sets if previous_sets and previous_sets.exists() else None,
        )

    def options_for(self, entry: Dataset) -> ViewerOptions:
        return dataclasses.replace(
            self.options,
            title=entry.name,
            previous_annotations=None,
            previous_gene_sets=None,
            extra_scripts=(*self.options.extra_scripts, NAV_SCRIPT),
        )

    def acquire(self, entry: Dataset) -> Session:
        """The dataset's session, loaded if need be, counted as in use until `release`."""
        if not entry.usable:
            raise DatasetUnavailable(409, "This dataset cannot be opened: " + " ".join(entry.problems))
        with entry.lock:
            with self._lock:
                if entry.session is not None:
                    entry.active += 1
                    entry.last_used = time.monotonic()
                    return entry.session
            if self.finish_reason is not None:
                raise DatasetUnavailable(410, "This session has finished; its results are in your Galaxy history.")
            self._make_room(entry)
            session = self._load(entry)
            with self._lock:
                entry.session = session
                entry.active += 1
                entry.last_used = time.monotonic()
            if entry.loads == 1:
                self.write_galaxy_json()  # this dataset's outputs exist from now on
            return session

    def release(self, entry: Dataset) -> None:
        with self._lock:
            entry.active -= 1
            entry.last_used = time.monotonic()

    def _load(self, entry: Dataset) -> Session:
        from galaxy_cellxgene.prepare import prepare

        started = time.monotonic()
        paths = self.paths_for(entry)
        options = self.options_for(entry)
        try:
            prepared = prepare(entry.source, paths.work_dir, options)
            paths = dataclasses.replace(paths, prepared=prepared.path)
            session = self._loader(paths, options)
        except StartupError as err:
            entry.load_error = str(err)
            raise DatasetUnavailable(409, f"cellxgene could not open this dataset: {err}") from err
        except Exception as err:
            entry.load_error = f"{type(err).__name__}: {err}"
            log.exception("loading %s failed", entry.slug)
            raise DatasetUnavailable(500, f"cellxgene could not open this dataset: {entry.load_error}") from err
        entry.loads += 1
        entry.load_error = None
        entry.load_seconds = round(time.monotonic() - started, 2)
        say(f"loaded '{entry.slug}' in {entry.load_seconds:.2f} s (estimated {entry.cost / 2**20:.0f} MiB)")
        return session

    def _loaded_cost(self) -> int:
        return sum(d.cost for d in self.datasets if d.session is not None)

    def _make_room(self, entry: Dataset) -> None:
        """Unload idle datasets, least recently used first, until `entry` fits the budget."""
        if self.memory_budget_bytes is None:
            return
        while True:
            with self._lock:
                if self._loaded_cost() + entry.cost <= self.memory_budget_bytes:
                    return
                victims = sorted(
                    (d for d in self.datasets if d.session is not None and d.active == 0 and d is not entry),
                    key=lambda d: d.last_used,
                )
            if not victims:
                # One dataset is always allowed, even over budget: refusing helps nobody.
                if self._loaded_cost() > 0 or entry.cost > self.memory_budget_bytes:
                    say(f"'{entry.slug}' loads over the memory budget: nothing idle to unload")
                return
            if not any(self._try_unload(victim, "memory budget") for victim in victims):
                return

    def _try_unload(self, entry: Dataset, why: str) -> bool:
        # Non-blocking: a dataset being loaded or acquired right now is not idle.
        if not entry.lock.acquire(blocking=False):
            return False
        try:
            with self._lock:
                session = entry.session
                if session is None or entry.active > 0:
                    return False
                entry.session = None
            with session.store.save_lock:
                # Every save is on disk already; a straggler holding the old app must not write.
                session.store.frozen = True
            # Its differential expression results live in memory only: send them to the history now.
            session.send_pending_diffexp()
            entry.past_label_saves += session.store.log.label_saves
            entry.past_gene_set_saves += session.store.log.gene_set_saves
            entry.unloads += 1
            say(f"unloaded '{entry.slug}' ({why}); its saves are in its outputs")
        finally:
            entry.lock.release()
        del session
        gc.collect()
        _return_freed_memory()
        return True

    def _reaper(self) -> None:
        assert self.unload_after is not None
        step = max(0.2, min(self.unload_after / 4, 10.0))
        while not self.finished.wait(step):
            now = time.monotonic()
            for entry in self.datasets:
                if entry.session is not None and entry.active == 0 and now - entry.last_used >= self.unload_after:
                    self._try_unload(entry, f"idle for {self.unload_after:.0f} s")

    def _finish_one(self, entry: Dataset, reason: str) -> None:
        if entry.session is not None:
            result = entry.session.finish(reason)
            entry.merged_written = entry.session.paths.merged_out is not None and not result.get("finish_error")
            if result.get("finish_error"):
                self.finish_errors.append(f"{entry.name}: {result['finish_error']}")
            return
        if entry.loads == 0 or self.dirs.merged is None:
            return  # never opened: nothing was made, and a copy of the input would only cost disk
        from galaxy_cellxgene.merge import merge_files

        paths = self.paths_for(entry)
        try:
            assert paths.merged_out is not None
            labels, sets = (p if p.exists() else None for p in (paths.annotations_out, paths.gene_sets_out))
            merge_files(entry.source, paths.merged_out, labels, sets, scratch_dir=paths.work_dir)
            entry.merged_written = True
        except Exception as err:  # the CSV outputs are safe; report, never hide
            self.finish_errors.append(f"{entry.name}: the merged h5ad could not be written: {err}")
            log.exception("merged h5ad for %s failed", entry.slug)

    def _dataset_status(self, entry: Dataset) -> dict:
        session = entry.session
        inner = session.status() if session is not None else {}
        labels = self.dirs.annotations / f"{entry.slug}.csv"
        return {
            "name": entry.name,
            "slug": entry.slug,
            "path": f"d/{entry.slug}/",
            "usable": entry.usable,
            "problems": entry.problems,
            "cells": entry.facts.n_obs if entry.facts else None,
            "genes": entry.facts.n_vars if entry.facts else None,
            "embeddings": list(entry.facts.embeddings) if entry.facts else [],
            "estimated_mb": round(entry.cost / 2**20, 1),
            "loaded": session is not None,
            "loads": entry.loads,
            "unloads": entry.unloads,
            "load_seconds": entry.load_seconds,
            "load_error": entry.load_error,
            "opened": entry.loads > 0,
            "annotations_output": labels.name if labels.exists() else None,
            "label_saves": inner.get("label_saves", 0) + entry.past_label_saves,
            "gene_set_saves": inner.get("gene_set_saves", 0) + entry.past_gene_set_saves,
            "categories": inner["categories"] if "categories" in inner else self._categories_on_disk(entry),
            "merged": entry.merged_written,
        }

    def _categories_on_disk(self, entry: Dataset) -> list[str]:
        path = self.dirs.annotations / f"{entry.slug}.csv"
        if not path.exists() or path.stat().st_size == 0:
            return []
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.startswith("#"):  # cellxgene's two comment lines, then the header
                    return next(csv.reader([line]))[1:]
        return []

    # ---- WSGI ---------------------------------------------------------------------------

    def wsgi(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if not path.startswith(QUIET_PATHS):
            self.touch()
        if path.startswith("/d/"):
            return self._dataset_route(path[3:], environ, start_response)
        if path == "/" and method in ("GET", "HEAD"):
            return _respond(start_response, "200 OK", render_landing(self), "text/html; charset=utf-8")
        if path == "/health":
            body = json.dumps({"status": "pass", "datasets": len(self.datasets)})
            return _respond(start_response, "200 OK", body, "application/json")
        if path == "/galaxy/status":
            return _respond(start_response, "200 OK", json.dumps(self.status()), "application/json")
        if path == "/galaxy/finish" and method == "POST":
            if not finish_allowed(_headers(environ)):
                return _refuse_finish(start_response)
            return _respond(start_response, "200 OK", json.dumps(self.finish("finish button")), "application/json")
        return _respond(start_response, "404 Not Found", "Not found", "text/plain; charset=utf-8")

    def _dataset_route(self, rest: str, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        slug, slash, tail = rest.partition("/")
        entry = self.by_slug.get(slug)
        if entry is None:
            return _respond(start_response, "404 Not Found", "No such dataset in this session", "text/plain")
        if not slash:
            # The page resolves its API against its own URL: it must end in "/". Relative
            # Location, so the redirect works under any proxy prefix.
            query = environ.get("QUERY_STRING", "")
            location = quote(slug) + "/" + (f"?{query}" if query else "")
            start_response("308 Permanent Redirect", [("Location", location), ("Content-Length", "0")])
            return [b""]
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if tail == "galaxy/finish" and method == "POST":
            # The page's "Finish and save to Galaxy" ends the whole session, every dataset.
            if not finish_allowed(_headers(environ)):
                return _refuse_finish(start_response)
            whole = self.finish("finish button")
            mine = next(r for r in whole["datasets"] if r["slug"] == slug)
            body = {**whole, **mine, "finish_error": whole["finish_error"]}
            return _respond(start_response, "200 OK", json.dumps(body), "application/json")
        try:
            session = self.acquire(entry)
        except DatasetUnavailable as err:
            return _respond(start_response, f"{err.status} Unavailable", error_page(entry, err.message), "text/html")
        inner = dict(environ)
        inner["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "").rstrip("/") + "/d/" + slug
        inner["PATH_INFO"] = "/" + tail
        try:
            result = session.app(inner, start_response)
        except BaseException:
            self.release(entry)
            raise
        return _Closing(result, lambda: self.release(entry))


def _refuse_finish(start_response: StartResponse) -> list[bytes]:
    return _respond(start_response, "403 Forbidden", json.dumps({"message": FINISH_REFUSED}), "application/json")


def _headers(environ: Environ) -> dict[str, str]:
    """The request headers of a WSGI environ, by their HTTP names (X-Galaxy-Cellxgene)."""
    return {key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")}


def _return_freed_memory() -> None:
    """glibc keeps freed heap pages in its per-thread arenas; waitress's threads would then hold
    the memory of an unloaded dataset, and the budget would only be true on paper."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _existing(folder: Path | None, slug: str) -> Path | None:
    if folder is None:
        return None
    candidate = folder / f"{slug}.csv"
    return candidate if candidate.is_file() else None


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


def _respond(start_response: StartResponse, status: str, body: str, content_type: str) -> list[bytes]:
    data = body.encode("utf-8")
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ],
    )
    return [data]


# --------------------------------------------------------------------------------------------
# Pages. Every user-chosen text (element identifiers, title, problems) goes through escape().

e = html.escape


def _embeddings_text(entry: Dataset) -> str:
    if not entry.facts or not entry.facts.embeddings:
        return "—"
    return ", ".join(e(name) for name in entry.facts.embeddings)


def _count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def render_landing(multi: MultiSession) -> str:
    rows = []
    for entry in multi.datasets:
        status = multi._dataset_status(entry)
        if entry.usable:
            name_cell = f'<a class="open" href="d/{e(quote(entry.slug))}/">{e(entry.name)}</a>'
        else:
            name_cell = f'<span class="unusable">{e(entry.name)}</span>'
        if not entry.usable:
            state = '<span class="bad">cannot be opened</span><br><small>' + e(" ".join(entry.problems)) + "</small>"
        elif entry.load_error:
            state = '<span class="bad">failed to load</span><br><small>' + e(entry.load_error) + "</small>"
        elif status["loaded"]:
            state = '<span class="ok">open</span>'
        elif status["opened"]:
            state = "resting (reloads when opened)"
        else:
            state = "not opened yet"
        categories = ", ".join(e(c) for c in status["categories"]) or "—"
        rows.append(
            "<tr>"
            f'<td class="name" data-slug="{e(entry.slug)}">{name_cell}</td>'
            f'<td class="num">{_count(entry.facts.n_obs if entry.facts else None)}</td>'
            f'<td class="num">{_count(entry.facts.n_vars if entry.facts else None)}</td>'
            f"<td>{_embeddings_text(entry)}</td>"
            f"<td>{categories}</td>"
            f"<td>{state}</td>"
            "</tr>"
        )
    budget = (
        f"Memory budget {multi.memory_budget_bytes / 2**20:,.0f} MiB: datasets not in use are closed to make room "
        "and reopen where you left off."
        if multi.memory_budget_bytes
        else "Datasets load when first opened."
    )
    finished = multi.finished.is_set()
    return LANDING_TEMPLATE.format(
        title=e(multi.title),
        count=len(multi.datasets),
        rows="\n".join(rows),
        budget=e(budget),
        disabled=" disabled" if finished else "",
        done_hidden="" if finished else " hidden",
    )


def error_page(entry: Dataset, message: str) -> str:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>cellxgene</title>"
        f"<body style='font-family:sans-serif;margin:2em'><h1>{e(entry.name)}</h1><p>{e(message)}</p>"
        "<p><a href='../../'>All datasets</a></p></body></html>"
    )


LANDING_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0; color: #1f2328; }}
header {{ background: #2c3143; color: #fff; padding: 14px 24px; display: flex; align-items: center; gap: 16px; }}
header h1 {{ font-size: 20px; margin: 0; flex: 1; font-weight: 600; }}
main {{ padding: 18px 24px; }}
table {{ border-collapse: collapse; width: 100%; font-size: 14px; }}
th, td {{ text-align: left; padding: 8px 10px; border-bottom: 1px solid #d8dee4; vertical-align: top; }}
th {{ background: #f6f8fa; font-weight: 600; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
a.open {{ color: #0b5cad; font-weight: 600; text-decoration: none; }}
a.open:hover {{ text-decoration: underline; }}
.ok {{ color: #1b5e20; font-weight: 600; }}
.bad {{ color: #b00020; font-weight: 600; }}
.unusable {{ color: #57606a; }}
p.note {{ color: #57606a; font-size: 13px; }}
button#finish {{ background: #fff; color: #2c3143; border: 0; border-radius: 3px; padding: 7px 14px;
  font-weight: 600; cursor: pointer; }}
button#finish:disabled {{ opacity: .6; cursor: default; }}
#done {{ background: #e6f4ea; border: 1px solid #1b5e20; padding: 10px 14px; margin-bottom: 14px; }}
</style>
</head>
<body>
<header>
<h1>{title}</h1>
<button id="finish" type="button"{disabled}>Finish and save to Galaxy</button>
</header>
<main>
<div id="done" role="status"{done_hidden}>This session has finished: your annotations, gene sets and
annotated datasets are in your Galaxy history. You can close this tab.</div>
<p>{count} datasets. Open one to explore and annotate it in cellxgene; each keeps its own annotations,
saved to Galaxy as you work. Switch with the browser's back button or the "All datasets" link in the viewer.</p>
<table id="datasets">
<thead><tr><th>Dataset</th><th>Cells</th><th>Genes</th><th>Embeddings</th><th>Your annotations</th>
<th>State</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<p class="note">{budget}</p>
</main>
<script>
(function () {{
  "use strict";
  var button = document.getElementById("finish");
  button.addEventListener("click", function () {{
    if (!window.confirm("Finish the session for every dataset and save the results to Galaxy?")) return;
    button.disabled = true;
    button.textContent = "Saving…";
    // The header proves the request comes from this page (app.FINISH_HEADER).
    fetch("galaxy/finish", {{ method: "POST", headers: {{ "X-Galaxy-Cellxgene": "finish" }} }})
      .then(function (r) {{ return r.json(); }})
      .then(function (s) {{
        button.textContent = "Finished";
        var done = document.getElementById("done");
        if (s.finish_error) done.textContent = "Finished with a problem: " + s.finish_error;
        done.hidden = false;
      }})
      .catch(function (err) {{
        button.disabled = false;
        button.textContent = "Finish and save to Galaxy";
        window.alert("Finish failed: " + err);
      }});
  }});
}})();
</script>
</body>
</html>
"""


# --------------------------------------------------------------------------------------------
# Building a session from (name, path) pairs.


def plan_datasets(
    items: list[tuple[str, Path]],
    options: ViewerOptions,
    check: Callable[[Path, ViewerOptions], list[str]] | None = None,
) -> list[Dataset]:
    """One Dataset per (name, path), with safe unique slugs, file facts and blocking problems."""
    slugs = unique_safe_names(name for name, _ in items)
    datasets = []
    for (name, path), slug in zip(items, slugs, strict=True):
        problems = check(path, options) if check else []
        facts = None
        if not problems:
            try:
                facts = read_facts(path, options.layer)
            except (OSError, KeyError, ValueError) as err:
                problems = [f"ERROR: it is not a readable h5ad file ({err})."]
        datasets.append(Dataset(name=name, slug=slug, source=Path(path).resolve(), facts=facts, problems=problems))
    return datasets


def quick_check(path: Path, options: ViewerOptions) -> list[str]:
    """validate.inspect's quick mode, the same `view` runs before it starts."""
    from galaxy_cellxgene.validate import inspect

    try:
        inspection = inspect(path, options, thorough=False)
    except Exception as err:  # one dataset's fault (or the reader's) must not end the session
        from galaxy_cellxgene.failure import one_line

        return [one_line("view-many", err)]
    return [str(p) for p in inspection.errors]
