"""The loaded datasets of a list: loaded on first use, dropped when idle or to make room.

A dataset is loaded on first use and dropped again after idling (`reap`, run by a thread the
session starts), or when loading another one would exceed the memory budget (least recently
used first). Dropping loses nothing: every save is already in that dataset's Galaxy output
(outputs.py writes it within the request), and a reload resumes from those outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Callable

from galaxy_cellxgene.app import Session, build_session
from galaxy_cellxgene.cellxgene_internals import StartupError
from galaxy_cellxgene.joblog import say
from galaxy_cellxgene.multi import subsets
from galaxy_cellxgene.multi.datasets import Dataset, DatasetUnavailable
from galaxy_cellxgene.session_files import OutputDirs, Paths
from galaxy_cellxgene.settings import ViewerOptions
from galaxy_cellxgene.sparse_structure import SparseStructureError
from galaxy_cellxgene.x_bounds import XTooLarge

log = logging.getLogger("galaxy_cellxgene.multi")

NAV_SCRIPT = "galaxy/static/multi.js"
Loader = Callable[[Paths, ViewerOptions], Session]


class DatasetPool:
    def __init__(
        self,
        datasets: list[Dataset],
        dirs: OutputDirs,
        options: ViewerOptions,
        memory_budget_bytes: int | None = None,
        unload_after: float | None = None,
        loader: Loader = build_session,
        on_first_load: Callable[[Dataset], None] | None = None,
    ) -> None:
        self.datasets = datasets
        self.dirs = dirs
        self.options = options
        self.memory_budget_bytes = memory_budget_bytes
        self.unload_after = unload_after
        self._loader = loader
        self._on_first_load = on_first_load
        self._lock = threading.Lock()  # bookkeeping only; never held while loading
        self.closed = False  # set by the session's finish: nothing loads after it

    def paths_for(self, entry: Dataset) -> Paths:
        return self.dirs.paths(entry.slug, entry.source, reload=entry.loads > 0)

    def options_for(self, entry: Dataset) -> ViewerOptions:
        return dataclasses.replace(
            self.options,
            title=entry.name,
            previous_annotations=None,
            previous_gene_sets=None,
            extra_scripts=(*self.options.extra_scripts, NAV_SCRIPT),
        )

    def loaded(self) -> list[Dataset]:
        return [d for d in self.datasets if d.session is not None]

    def loaded_cost(self) -> int:
        return sum(d.cost for d in self.loaded())

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
            if self.closed:
                raise DatasetUnavailable(410, "This session has finished; its results are in your Galaxy history.")
            self._make_room(entry)
            session = self._load(entry)
            with self._lock:
                entry.session = session
                entry.active += 1
                entry.last_used = time.monotonic()
            if entry.loads == 1 and self._on_first_load is not None:
                self._on_first_load(entry)  # this dataset's outputs exist from now on
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
            subsets.adopt(entry, session)  # its "Save at Finish" requests outlive this load
        except (StartupError, XTooLarge, SparseStructureError) as err:  # the dataset's fault, said as such
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

    def _make_room(self, entry: Dataset) -> None:
        """Unload idle datasets, least recently used first, until `entry` fits the budget."""
        if self.memory_budget_bytes is None:
            return
        while True:
            with self._lock:
                if self.loaded_cost() + entry.cost <= self.memory_budget_bytes:
                    return
                victims = sorted(
                    (d for d in self.loaded() if d.active == 0 and d is not entry),
                    key=lambda d: d.last_used,
                )
            if not victims:
                # One dataset is always allowed, even over budget: refusing helps nobody.
                if self.loaded_cost() > 0 or entry.cost > self.memory_budget_bytes:
                    say(f"'{entry.slug}' loads over the memory budget: nothing idle to unload")
                return
            if not any(self.try_unload(victim, "memory budget") for victim in victims):
                return

    def try_unload(self, entry: Dataset, why: str) -> bool:
        # Non-blocking: a dataset being loaded or acquired right now is not idle.
        if not entry.lock.acquire(blocking=False):
            return False
        try:
            with self._lock:
                session = entry.session
                if session is None or entry.active > 0:
                    return False
                entry.session = None
            past = session.close()  # no straggler holding the old app may write again
            # Its differential expression results live in memory only: send them to the history now.
            session.send_pending_diffexp()
            entry.past_label_saves += past["label_saves"]
            entry.past_gene_set_saves += past["gene_set_saves"]
            entry.unloads += 1
            say(f"unloaded '{entry.slug}' ({why}); its saves are in its outputs")
        finally:
            entry.lock.release()
        del session
        gc.collect()
        _return_freed_memory()
        return True

    def reap(self, stop: threading.Event) -> None:
        """Unload datasets idle for `unload_after` seconds, until `stop` is set (a thread's loop)."""
        if self.unload_after is None:
            return
        step = max(0.2, min(self.unload_after / 4, 10.0))
        while not stop.wait(step):
            now = time.monotonic()
            for entry in self.datasets:
                if entry.session is not None and entry.active == 0 and now - entry.last_used >= self.unload_after:
                    self.try_unload(entry, f"idle for {self.unload_after:.0f} s")


def _return_freed_memory() -> None:
    """glibc keeps freed heap pages in its per-thread arenas; waitress's threads would then hold
    the memory of an unloaded dataset, and the budget would only be true on paper."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
