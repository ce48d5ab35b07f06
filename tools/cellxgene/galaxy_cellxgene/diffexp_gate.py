"""Differential expression, within what one job can afford: at most N at once (each can hold a copy
of X's rows), never over the session's cell limit, and only once X's distribution is known."""

from __future__ import annotations

import threading

from flask import Flask, jsonify

from galaxy_cellxgene import cellxgene_internals as cx
from galaxy_cellxgene.settings import ViewerOptions


def install(app: Flask, options: ViewerOptions, ready: threading.Event, wait: float = 30.0) -> None:
    """Wrap cellxgene's diffexp view: `ready` is set once the distribution is measured."""
    gate = threading.BoundedSemaphore(max(1, int(options.diffexp_concurrency)))
    cx.wrap_view(app, cx.DIFFEXP_ENDPOINT, lambda view: _limited(view, gate, ready, wait))


def _limited(view, gate: threading.BoundedSemaphore, ready: threading.Event, wait: float):
    def limited(*args, **kwargs):
        from flask import request

        limit = cx.diffexp_cell_limit()
        selected = _selected_cells(request.get_json(silent=True))
        if limit is not None and selected is not None and selected > limit:
            # cellxgene refuses too, but its message is lost on the way to the page.
            response = jsonify(
                {
                    "message": f"Differential expression is limited to {limit} cells in this session "
                    f"(you selected {selected}), so that it fits the job's memory. Select fewer cells."
                }
            )
            response.status_code = 400
            return response
        ready.wait(timeout=600)  # backed mode: the distribution is still being measured
        if not gate.acquire(timeout=wait):
            response = jsonify(
                {"message": "Another differential expression is running in this session; try again shortly."}
            )
            response.status_code = 503
            response.headers["Retry-After"] = "5"
            return response
        try:
            return view(*args, **kwargs)
        finally:
            gate.release()

    return limited


def _selected_cells(body) -> int | None:
    """Cells in the two obs selections of a diffexp request: ints or [start, stop) ranges."""
    try:
        total = 0
        for key in ("set1", "set2"):
            for item in body[key]["filter"]["obs"]["index"]:
                total += int(item[1]) - int(item[0]) if isinstance(item, list) else 1
        return total
    except (KeyError, TypeError, ValueError, IndexError):
        return None
