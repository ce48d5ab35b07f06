"""Export to Galaxy: copy the current annotations and gene sets into the user's history.

The viewer keeps running; this only uploads the files our annotations store last wrote
(each save replaces them atomically, so a read is never torn). The browser only ever sees
`POST galaxy/export`; Galaxy's URL and the history come from the job's environment, and the
upload authenticates with the owner's own Galaxy session, the cookie of the request that asked
(owner_gate.py proved it is the owner's). No API key is in the job (docs/security.md). All
Galaxy calls go through galaxy_client.py.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import flask

from galaxy_cellxgene.galaxy_client import ENV_HISTORY, ENV_URL, GalaxyCallError, GalaxyClient, GalaxyLink
from galaxy_cellxgene.owner_gate import ENVIRON_COOKIE

log = logging.getLogger("galaxy_cellxgene.export")

# export.js sends this header. A page on another site can make a browser POST here (a form,
# or fetch in no-cors mode) but cannot add a custom header without a CORS preflight, and
# cellxgene answers preflights only in its debug mode (app__debug, never set by settings.py):
# so only the viewer's own page can export.
CSRF_HEADER = "X-Galaxy-Cellxgene"
# The name the viewer's messages and older callers use for a failure the user can act on.
ExportError = GalaxyCallError


def missing_message(link: GalaxyLink) -> str:
    return (
        "Export to Galaxy is not available in this session: the job environment lacks "
        + ", ".join(link.missing())
        + ". Galaxy sets them when the tool runs inside Galaxy; use Finish to save your work instead."
    )


def request_client(link: GalaxyLink) -> GalaxyClient:
    """A client acting with the session of the request being answered: the owner's, as the owner
    gate proved; with the gate switched off, whoever's browser asked (Galaxy then allows only
    what that user may do in the owner's history: nothing, for anyone but the owner)."""
    cookie = flask.request.environ.get(ENVIRON_COOKIE) or link.cookie_in(flask.request.headers)
    return link.client(cookie)


def register(
    app: flask.Flask,
    link: GalaxyLink,
    annotations_path: Path,
    gene_sets_path: Path,
    dataset_name: str,
    diffexp: Any = None,
) -> None:
    """Add the export routes to cellxgene's app, under /galaxy (relative to the entry point).

    GET  galaxy/export            {"enabled": true} or 501 with the reason (the button hides)
    POST galaxy/export            upload both files; answers once Galaxy has accepted them
    GET  galaxy/export/jobs/<id>  state of an upload this session started (the button polls)
    """
    annotations_path = Path(annotations_path)
    gene_sets_path = Path(gene_sets_path)
    # Only uploads this session made may be asked about: the route must not become a way
    # to read arbitrary Galaxy jobs with the user's session.
    started_jobs: set[str] = set()
    bp = flask.Blueprint("galaxy_export", __name__, url_prefix="/galaxy")

    @bp.get("/export")
    def export_info():
        if not link.can_write:
            return _json({"enabled": False, "message": missing_message(link)}, 501)
        return _json({"enabled": True})

    @bp.post("/export")
    def export():
        if flask.request.headers.get(CSRF_HEADER) != "export":
            return _json({"ok": False, "message": f"Missing {CSRF_HEADER} header."}, 403)
        if not link.can_write:
            return _json({"enabled": False, "message": missing_message(link)}, 501)
        comparisons = diffexp.pending() if diffexp is not None else []
        try:
            tables = diffexp_files(diffexp, comparisons, dataset_name)
            result = export_files(request_client(link), annotations_path, gene_sets_path, dataset_name, extra=tables)
        except ExportError as err:
            log.warning("export to Galaxy failed: %s", err)
            return _json({"ok": False, "message": str(err)}, err.status)
        started_jobs.update(result["jobs"])
        if diffexp is not None:
            diffexp.mark_exported(comparisons)
        log.info(
            "export to Galaxy history %s accepted: %s",
            link.history_id,
            ", ".join(d["name"] for d in result["datasets"]),
        )
        return _json({"ok": True, **result})

    @bp.get("/export/jobs/<job_id>")
    def export_job(job_id: str):
        if not link.can_write:
            return _json({"enabled": False, "message": missing_message(link)}, 501)
        if job_id not in started_jobs:
            return _json({"ok": False, "message": "Not an export of this session."}, 404)
        try:
            state = request_client(link).job_state(job_id)
        except ExportError as err:
            return _json({"ok": False, "state": "error", "message": str(err)}, 200)
        return _json({"ok": True, "state": state})

    app.register_blueprint(bp)


def _json(body: dict[str, Any], status: int = 200) -> flask.Response:
    response = flask.jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def export_files(
    client: GalaxyClient,
    annotations_path: Path | None,
    gene_sets_path: Path | None,
    dataset_name: str,
    *,
    extra: Sequence[tuple[Path, str, str, str]] = (),
) -> dict[str, Any]:
    """Upload whichever of the two files hold a save, and the `extra` (path, kind, name, ext)
    files (differential expression tables); return once Galaxy has accepted them."""
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    files = [
        (path, kind, f"{dataset_name}: cellxgene {kind} (exported {stamp})", "csv")
        for path, kind in ((annotations_path, "annotations"), (gene_sets_path, "gene sets"))
        if path is not None
    ] + list(extra)
    # No file: nothing saved yet. An empty labels file: the user deleted every category.
    # Either way there is nothing to keep, so only files with content travel.
    present = [entry for entry in files if entry[0].is_file() and entry[0].stat().st_size > 0]
    skipped = [entry[1] for entry in files if entry not in present]
    if not present:
        raise ExportError(
            "Nothing to export yet: no labels, gene sets or differential expression results in this session. "
            "Create a category or a gene set first (cellxgene saves within a few seconds).",
            status=409,
        )
    created = client.upload_files([(path, name, ext) for path, _, name, ext in present])
    # Galaxy returns the outputs in the order of the elements sent.
    datasets = [{**out, "kind": kind} for out, (_, kind, _, _) in zip(created["datasets"], present, strict=False)]
    return {
        "history_id": created["history_id"],
        "datasets": datasets,
        "skipped": skipped,
        "jobs": created["jobs"],
        "state": "queued",
    }


def diffexp_files(diffexp: Any, comparisons: list[Any], dataset_name: str) -> list[tuple[Path, str, str, str]]:
    """One tabular file per differential expression comparison (diffexp_export.py)."""
    if diffexp is None:
        return []
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    return [
        (
            diffexp.write(c),
            "differential expression",
            f"{dataset_name}: cellxgene differential expression {c.number}, {c.title()} (exported {stamp})",
            "tabular",
        )
        for c in comparisons
    ]


def export_diffexp_at_finish(link: GalaxyLink, diffexp: Any, dataset_name: str) -> str | None:
    """Finish: upload the comparisons not exported yet, as the owner (the Finish request's
    session, remembered by the owner gate). Returns a problem to report, or None."""
    comparisons = diffexp.pending() if diffexp is not None else []
    if not comparisons or not link.can_write:
        return None
    files = diffexp_files(diffexp, comparisons, dataset_name)
    try:
        result = export_files(link.client(), None, None, dataset_name, extra=files)
    except ExportError as err:
        log.warning("differential expression export at finish failed: %s", err)
        return f"The differential expression results could not be sent to Galaxy: {err}"
    diffexp.mark_exported(comparisons)
    log.info("finish: %d differential expression tables sent to Galaxy", len(result["datasets"]))
    return None


__all__ = ["CSRF_HEADER", "ENV_HISTORY", "ENV_URL", "ExportError", "export_files", "register"]
