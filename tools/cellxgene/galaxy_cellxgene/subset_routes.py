"""The viewer's "New dataset from cells": routes under /galaxy/subset, a writer beside the viewer, and
the subsets asked for at Finish.

GET  galaxy/subset           the categories (the user's labels and the dataset's own label columns),
                             each with its labels; whether "now" (into the history) and "at Finish" work
POST galaxy/subset           {"category", "labels": [...], "when": "now" | "finish"}; answers at once:
                             "now" starts a writer thread (202), "finish" remembers the request
GET  galaxy/subset/<id>      a "now" request's state: writing, sent (Galaxy has the upload) or error

A subset is written from the user's dataset (subset.py: anndata's own subsetting, matrices streamed)
with the labels the viewer has saved at the time of the request. One writer runs at a time: each
holds the dataset's small parts and one block of its matrix.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import flask
import pandas as pd

from galaxy_cellxgene.galaxy_client import GalaxyLink
from galaxy_cellxgene.subset import MAX_SUBSETS, SubsetError, SubsetSource, cell_mask, label_choices, subset_title
from galaxy_cellxgene.web import FINISH_HEADER, no_store

log = logging.getLogger("galaxy_cellxgene.subset")

HEADER_VALUE = "subset"  # the page's own proof, as for Finish (web.FINISH_HEADER)


@dataclass
class Request:
    number: int
    category: str
    labels: tuple[str, ...]
    cells: int
    title: str
    state: str = "queued"
    message: str = ""
    path: Path | None = None


@dataclass
class Subsets:
    """The requests of one viewer session; `labels()` is what the viewer has saved now."""

    source: Path
    dataset_name: str
    work_dir: Path
    labels: Callable[[], pd.DataFrame | None]
    obs: Callable[[], pd.DataFrame]
    finish_dir: Path | None = None
    finish_prefix: str = ""  # file names' start in finish_dir (session_files.Paths.subsets_prefix)
    upload: Callable[[Path, str], str] | None = None  # returns how the history names it
    requests: dict[int, Request] = field(default_factory=dict)
    at_finish: list[Request] = field(default_factory=list)
    _numbers: itertools.count = field(default_factory=lambda: itertools.count(1))
    _writer: threading.Lock = field(default_factory=threading.Lock)

    def frame(self) -> pd.DataFrame:
        """The categories a subset can be made from: the dataset's obs and the user's labels."""
        obs = self.obs()
        labels = self.labels()
        # cellxgene saves one row per cell, in obs order (merge.align_labels checks the names on writing).
        if labels is None or not len(labels.columns) or len(labels) != len(obs):
            return obs
        user = labels.set_axis(obs.index, axis=0)
        return pd.concat([obs.drop(columns=[c for c in labels.columns if c in obs.columns]), user], axis=1)

    def choices(self) -> dict[str, list[str]]:
        return label_choices(self.frame())

    def ask(self, category: str, labels: list[str], when: str) -> Request:
        if when not in ("now", "finish") or (when == "now" and self.upload is None):
            raise SubsetError(f"'{when}' is not available in this session.", "Use Finish to save the subset.")
        if when == "finish" and self.finish_dir is None:
            raise SubsetError("this session writes no subsets at Finish.", "Ask for the subset now instead.")
        if len(self.at_finish) >= MAX_SUBSETS:
            raise SubsetError(f"{MAX_SUBSETS} subsets are already waiting for Finish.", "Finish the session first.")
        chosen = tuple(dict.fromkeys(map(str, labels)))
        cells = int(cell_mask(self.frame(), category, chosen).sum())
        number = next(self._numbers)
        request = Request(number, category, chosen, cells, subset_title(self.dataset_name, chosen, cells))
        if when == "finish":
            self.at_finish.append(request)
        else:
            self.requests[number] = request
            threading.Thread(target=self._now, args=(request,), name=f"subset-{number}", daemon=True).start()
        return request

    def _write(self, request: Request, folder: Path, stem: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        with self._writer:
            source = SubsetSource.read(self.source, self.labels())
            path = folder / f"{stem}.h5ad"
            cells = source.write(source.mask(request.category, request.labels), path)
        # The labels may have changed since the request: the name tells what the file holds.
        request.cells, request.title = cells, subset_title(self.dataset_name, request.labels, cells)
        request.path = path
        return path

    def _now(self, request: Request) -> None:
        request.state = "writing"
        try:
            path = self._write(request, self.work_dir / "subsets", f"subset-{request.number}")
            request.state = "uploading"
            request.message = self.upload(path, request.title)
            request.state = "sent"
            path.unlink(missing_ok=True)  # Galaxy has its copy
        except Exception as err:  # shown in the viewer; the session goes on
            log.warning("subset %d failed: %s", request.number, err)
            request.state, request.message = "error", _describe(err)

    def finish(self) -> str | None:
        """Write each subset asked for at Finish into the job's outputs; a problem to report, or None."""
        problems = []
        stems = finish_stems(self.finish_prefix, [r.labels for r in self.at_finish])
        for request, stem in zip(self.at_finish, stems, strict=True):
            try:
                self._write(request, self.finish_dir, stem)
            except Exception as err:
                problems.append(f"{request.title}: {_describe(err)}")
        return "The subsets could not all be written: " + "; ".join(problems) if problems else None

    def describe(self, request: Request) -> dict:
        return {
            "ok": request.state != "error",
            "id": request.number,
            "title": request.title,
            "cells": request.cells,
            "state": request.state,
            "message": request.message,
        }


def finish_stems(prefix: str, chosen: list[tuple[str, ...]]) -> list[str]:
    """The file stems of the subsets asked for at Finish: safe, distinct, named after the labels;
    `prefix` (session_files.Paths.subsets_prefix) keeps the list tool's datasets apart in one folder."""
    from galaxy_cellxgene.multi.names import unique_safe_names

    return [prefix + stem for stem in unique_safe_names("_".join(labels) for labels in chosen)]


def upload_to_history(link: GalaxyLink, path: Path, title: str) -> str:
    """Upload one h5ad into the owner's history, as the owner (galaxy_client.py: the session of the
    owner's last request, never an API key); returns how the history names it."""
    result = link.client().upload_file(path, title, "h5ad")
    return f"#{result['hid']} {title}" if result.get("hid") else title


def _describe(err: Exception) -> str:
    fix = getattr(err, "fix", "")
    return f"{err} {fix}".strip()


def attach(app: flask.Flask, paths, dataset_name: str, store, data_adaptor, link: GalaxyLink | None) -> Subsets:
    """The subsets of one viewer (app.build_session): routes added, Finish's folder from `paths`;
    "now" uploads through `link` (None: no history to write to, Finish only)."""
    from galaxy_cellxgene import cellxgene_internals as cx

    subsets = Subsets(
        paths.source,
        dataset_name,
        paths.work_dir,
        labels=lambda: store.current_labels(data_adaptor) if store.user_annotations_enabled() else None,
        obs=lambda: cx.obs_frame(data_adaptor),
        finish_dir=paths.subsets_out,
        finish_prefix=paths.subsets_prefix,
        upload=functools.partial(upload_to_history, link) if link is not None else None,
    )
    register(app, subsets)
    return subsets


def register(app: flask.Flask, subsets: Subsets) -> None:
    bp = flask.Blueprint("galaxy_subset", __name__, url_prefix="/galaxy")

    @bp.get("/subset")
    def info():
        return _json(
            {
                "now": subsets.upload is not None,
                "at_finish": subsets.finish_dir is not None,
                "categories": subsets.choices(),
                "waiting_for_finish": [r.title for r in subsets.at_finish],
            }
        )

    @bp.post("/subset")
    def ask():
        if flask.request.headers.get(FINISH_HEADER) != HEADER_VALUE:
            return _json({"ok": False, "message": f"Missing {FINISH_HEADER} header."}, 403)
        body = flask.request.get_json(silent=True)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("labels"), list)
            or not body["labels"]
            or not body.get("category")
        ):
            return _json({"ok": False, "message": "Choose a category and at least one of its labels."}, 400)
        try:
            request = subsets.ask(str(body["category"]), [str(v) for v in body["labels"]], str(body.get("when")))
        except SubsetError as err:
            return _json({"ok": False, "message": _describe(err)}, 400)
        return _json(subsets.describe(request), 202)

    @bp.get("/subset/<int:number>")
    def state(number: int):
        request = subsets.requests.get(number)
        if request is None:
            return _json({"ok": False, "message": "Not a subset of this session."}, 404)
        return _json(subsets.describe(request))

    app.register_blueprint(bp)


def _json(body: dict, status: int = 200) -> flask.Response:
    response = flask.jsonify(body)
    response.status_code = status
    return no_store(response)
