"""MultiSession: several datasets in one session, driven by serve() like the single viewer.

It implements serve.ServedSession (app, galaxy, finished, idle_for, finish, status, hold_saves,
at_exit), as
app.Session does, so waitress, registration, signals and the idle timeout are the single
viewer's code, unchanged. Building one does nothing on disk; `start()` creates the output
folders, writes the first galaxy.json and starts the thread that unloads idle datasets.
"""

from __future__ import annotations

import csv
import logging
import threading
import time

from galaxy_cellxgene import remote_save
from galaxy_cellxgene.app import Session, build_session
from galaxy_cellxgene.galaxy_client import GalaxyLink
from galaxy_cellxgene.multi import subsets
from galaxy_cellxgene.multi.datasets import Dataset
from galaxy_cellxgene.multi.landing import render_landing
from galaxy_cellxgene.multi.listing import GalaxyListing
from galaxy_cellxgene.multi.pool import DatasetPool, Loader
from galaxy_cellxgene.multi.routes import Dispatcher
from galaxy_cellxgene.session_files import OutputDirs, Paths
from galaxy_cellxgene.settings import ViewerOptions

log = logging.getLogger("galaxy_cellxgene.multi")


class MultiSession:
    def __init__(
        self,
        datasets: list[Dataset],
        dirs: OutputDirs,
        options: ViewerOptions,
        title: str | None = None,
        memory_budget_bytes: int | None = None,
        unload_after: float | None = None,
        loader: Loader = build_session,
        galaxy: GalaxyLink | None = None,
    ) -> None:
        # One link to Galaxy for every dataset: the owner's session seen on any of them serves all.
        self.galaxy = galaxy if galaxy is not None else GalaxyLink.from_env()
        # Every remote saver a dataset's session made, kept past unloading: at exit each pushes.
        self.savers: list[remote_save.RemoteSaver] = []
        self.datasets = datasets
        self.dirs = dirs
        self.title = title or "cellxgene"
        self.memory_budget_bytes = memory_budget_bytes
        self.listing = GalaxyListing(dirs, datasets)
        self.pool = DatasetPool(
            datasets,
            dirs,
            options,
            memory_budget_bytes,
            unload_after,
            self._load if loader is build_session else loader,
            on_first_load=lambda _entry: self.listing.write(),
        )
        self._finish_lock = threading.Lock()
        self.finished = threading.Event()
        self.finish_reason: str | None = None
        self.finish_errors: list[str] = []
        self._activity = time.monotonic()
        self.app = Dispatcher(
            self.pool, landing=lambda: render_landing(self), status=self.status, finish=self.finish, touch=self.touch
        )

    def _load(self, paths: Paths, options: ViewerOptions) -> Session:
        session = build_session(paths, options, galaxy=self.galaxy)
        if session.saver is not None:
            self.savers.append(session.saver)
        return session

    def start(self) -> MultiSession:
        """Output folders, the first galaxy.json, and the idle reaper (until the session finishes)."""
        self.dirs.create()
        self.listing.write()
        if self.pool.unload_after is not None:
            threading.Thread(target=self.pool.reap, args=(self.finished,), name="unload-idle", daemon=True).start()
        return self

    # ---- serve.ServedSession ------------------------------------------------------------

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
        rows = [self.dataset_status(d) for d in self.datasets]
        return {
            "title": self.title,
            "datasets": rows,
            "loaded": [d.slug for d in self.pool.loaded()],
            "loaded_cost_mb": round(self.pool.loaded_cost() / 2**20, 1),
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

    def at_exit(self, terminated: bool) -> None:
        """The process is ending: every saver any dataset had pushes or withdraws (remote_save)."""
        remote_save.at_exit(list(self.savers), terminated)

    def finish(self, reason: str) -> dict:
        """Finish every dataset: freeze saves, write each opened dataset's merged h5ad and the subsets
        asked for at Finish, send its differential expression results not exported yet. Idempotent."""
        with self._finish_lock:
            if self.finish_reason is None:
                self.finish_reason = reason
                self.pool.closed = True
                for entry in self.datasets:
                    with entry.lock:  # a load in progress completes first; none starts after
                        self._finish_one(entry, reason)
                self.listing.write()
                self.finished.set()
        return self.status()

    # ---- one dataset --------------------------------------------------------------------

    def _finish_one(self, entry: Dataset, reason: str) -> None:
        if entry.session is not None:
            result = entry.session.finish(reason)
            entry.merged_written = entry.session.paths.merged_out is not None and not result.get("finish_error")
            if result.get("finish_error"):
                self.finish_errors.append(f"{entry.name}: {result['finish_error']}")
            return
        paths = self.pool.paths_for(entry)
        problem = subsets.finish_unloaded(entry, paths)
        if problem:
            self.finish_errors.append(f"{entry.name}: {problem}")
        if entry.loads == 0 or self.dirs.merged is None:
            return  # never opened: nothing was made, and a copy of the input would only cost disk
        from galaxy_cellxgene.merge import merge_files

        try:
            assert paths.merged_out is not None
            labels, sets = (p if p.exists() else None for p in (paths.annotations_out, paths.gene_sets_out))
            merge_files(entry.source, paths.merged_out, labels, sets, scratch_dir=paths.work_dir)
            entry.merged_written = True
        except Exception as err:  # the CSV outputs are safe; report, never hide
            self.finish_errors.append(f"{entry.name}: the merged h5ad could not be written: {err}")
            log.exception("merged h5ad for %s failed", entry.slug)

    def dataset_status(self, entry: Dataset) -> dict:
        session = entry.session
        inner = session.status() if session is not None else {}
        labels = self.dirs.annotations_file(entry.slug)
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
            "categories": inner["categories"] if "categories" in inner else _categories_in(labels),
            "merged": entry.merged_written,
            "subsets_at_finish": [r.title for r in entry.subsets_at_finish],
        }


def _categories_in(path) -> list[str]:
    """The category names of a labels CSV, from its header line alone."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.startswith("#"):  # cellxgene's two comment lines, then the header
                return next(csv.reader([line]))[1:]
    return []
