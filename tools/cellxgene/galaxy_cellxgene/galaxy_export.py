"""Export to Galaxy: copy the current annotations and gene sets into the user's history.

The viewer keeps running; this only uploads the files our annotations store last wrote
(each save replaces them atomically, so a read is never torn). The browser only ever sees
`POST galaxy/export`; the Galaxy URL, history and API key come from the job's environment
(the tool XML injects them) and the key is sent to Galaxy in a header, never echoed, never
logged.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import flask
import requests

log = logging.getLogger("galaxy_cellxgene.export")

ENV_URL = "GALAXY_URL"
ENV_KEY = "GALAXY_API_KEY"
ENV_HISTORY = "GALAXY_HISTORY_ID"
# export.js sends this header. A page on another site can make a browser POST here (a form,
# or fetch in no-cors mode) but cannot add a custom header without a CORS preflight, and
# cellxgene answers preflights only in its debug mode (app__debug, never set by settings.py):
# so only the viewer's own page can export.
CSRF_HEADER = "X-Galaxy-Cellxgene"

# Galaxy answers the upload request at once and then runs an upload job like any other
# job (seconds to a minute on a busy server); the page polls that job through us.
REQUEST_TIMEOUT = 60.0
TERMINAL_BAD = {"error", "failed", "deleted", "deleting", "stopped", "skipped"}


class ExportError(RuntimeError):
    """A failure the user can act on; the message is shown in the viewer."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class GalaxyTarget:
    url: str
    key: str
    history_id: str

    def __repr__(self) -> str:  # keep the key out of tracebacks and debug logs
        return f"GalaxyTarget(url={self.url!r}, history_id={self.history_id!r})"


def target_from_env(env: dict[str, str] | None = None) -> GalaxyTarget | None:
    env = dict(os.environ if env is None else env)
    url, key, history = (env.get(name, "").strip() for name in (ENV_URL, ENV_KEY, ENV_HISTORY))
    if not (url and key and history):
        return None
    return GalaxyTarget(url.rstrip("/") + "/", key, history)


def available(env: dict[str, str] | None = None) -> bool:
    """True when the job's environment lets us write to the user's history."""
    return target_from_env(env) is not None


def missing_message(env: dict[str, str] | None = None) -> str:
    env = dict(os.environ if env is None else env)
    missing = [name for name in (ENV_URL, ENV_KEY, ENV_HISTORY) if not env.get(name, "").strip()]
    return (
        "Export to Galaxy is not available in this session: the job environment lacks "
        + ", ".join(missing)
        + ". Galaxy sets them when the tool runs inside Galaxy; use Finish to save your work instead."
    )


def register(
    app: flask.Flask, annotations_path: Path, gene_sets_path: Path, dataset_name: str, diffexp: Any = None
) -> None:
    """Add the export routes to cellxgene's app, under /galaxy (relative to the entry point).

    GET  galaxy/export            {"enabled": true} or 501 with the reason (the button hides)
    POST galaxy/export            upload both files; answers once Galaxy has accepted them
    GET  galaxy/export/jobs/<id>  state of an upload this session started (the button polls)
    """
    annotations_path = Path(annotations_path)
    gene_sets_path = Path(gene_sets_path)
    # Only uploads this session made may be asked about: the route must not become a way
    # to read arbitrary Galaxy jobs with the user's key.
    started_jobs: set[str] = set()
    bp = flask.Blueprint("galaxy_export", __name__, url_prefix="/galaxy")

    @bp.get("/export")
    def export_info():
        if not available():
            return _json({"enabled": False, "message": missing_message()}, 501)
        return _json({"enabled": True})

    @bp.post("/export")
    def export():
        if flask.request.headers.get(CSRF_HEADER) != "export":
            return _json({"ok": False, "message": f"Missing {CSRF_HEADER} header."}, 403)
        target = target_from_env()
        if target is None:
            return _json({"enabled": False, "message": missing_message()}, 501)
        comparisons = diffexp.pending() if diffexp is not None else []
        try:
            tables = diffexp_files(diffexp, comparisons, dataset_name)
            result = export_files(target, annotations_path, gene_sets_path, dataset_name, extra=tables)
        except ExportError as err:
            log.warning("export to Galaxy failed: %s", err)
            return _json({"ok": False, "message": str(err)}, err.status)
        started_jobs.update(result["jobs"])
        if diffexp is not None:
            diffexp.mark_exported(comparisons)
        log.info(
            "export to Galaxy history %s accepted: %s",
            target.history_id,
            ", ".join(d["name"] for d in result["datasets"]),
        )
        return _json({"ok": True, **result})

    @bp.get("/export/jobs/<job_id>")
    def export_job(job_id: str):
        target = target_from_env()
        if target is None:
            return _json({"enabled": False, "message": missing_message()}, 501)
        if job_id not in started_jobs:
            return _json({"ok": False, "message": "Not an export of this session."}, 404)
        try:
            state = upload_state(target, job_id)
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
    target: GalaxyTarget,
    annotations_path: Path | None,
    gene_sets_path: Path | None,
    dataset_name: str,
    *,
    session: requests.Session | None = None,
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

    http = session or requests.Session()
    http.headers["x-api-key"] = target.key
    elements = [{"src": "files", "ext": ext, "name": name, "to_posix_lines": False} for _, _, name, ext in present]
    form = {
        "history_id": target.history_id,
        "targets": json.dumps([{"destination": {"type": "hdas"}, "elements": elements}]),
    }
    handles = [path.open("rb") for path, _, _, _ in present]
    try:
        multipart = [
            (f"files_{i}|file_data", (path.name, handle, "text/csv" if ext == "csv" else "text/plain"))
            for i, ((path, _, _, ext), handle) in enumerate(zip(present, handles, strict=True))
        ]
        response = _call(http, "post", target.url + "api/tools/fetch", data=form, files=multipart)
    finally:
        for handle in handles:
            handle.close()

    created = response.json()
    # Galaxy returns the outputs in the order of the elements sent.
    datasets = [
        {"id": out.get("id"), "hid": out.get("hid"), "name": out.get("name"), "kind": kind}
        for out, (_, kind, _, _) in zip(created.get("outputs", []), present, strict=False)
    ]
    jobs = [job.get("id") for job in created.get("jobs", []) if job.get("id")]
    return {
        "history_id": target.history_id,
        "datasets": datasets,
        "skipped": skipped,
        "jobs": jobs,
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


def export_diffexp_at_finish(diffexp: Any, dataset_name: str) -> str | None:
    """Finish: upload the comparisons not exported yet. Returns a problem to report, or None."""
    comparisons = diffexp.pending() if diffexp is not None else []
    target = target_from_env()
    if not comparisons or target is None:
        return None
    files = diffexp_files(diffexp, comparisons, dataset_name)
    try:
        result = export_files(target, None, None, dataset_name, extra=files)
    except ExportError as err:
        log.warning("differential expression export at finish failed: %s", err)
        return f"The differential expression results could not be sent to Galaxy: {err}"
    diffexp.mark_exported(comparisons)
    log.info("finish: %d differential expression tables sent to Galaxy", len(result["datasets"]))
    return None


def upload_state(target: GalaxyTarget, job_id: str, session: requests.Session | None = None) -> str:
    """The upload job's state; a failed upload raises with Galaxy's own last words."""
    http = session or requests.Session()
    http.headers["x-api-key"] = target.key
    job = _call(http, "get", target.url + f"api/jobs/{job_id}", params={"full": "true"}).json()
    state = str(job.get("state", ""))
    if state in TERMINAL_BAD:
        detail = (job.get("tool_stderr") or job.get("stderr") or "").strip().splitlines()
        raise ExportError(
            f"Galaxy could not store the export (upload job {state})" + (f": {detail[-1]}" if detail else ".")
        )
    return state


def _call(http: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    try:
        # No redirects: requests would resend the key header to wherever a redirect points
        # (it drops only Authorization on a host change, not x-api-key).
        response = http.request(method, url, timeout=REQUEST_TIMEOUT, allow_redirects=False, **kwargs)
    except requests.RequestException as err:
        # The exception text names the URL only; the key travels in a header.
        raise ExportError(f"Galaxy is not reachable at {url.split('?')[0]}: {type(err).__name__}") from err
    if response.is_redirect:
        raise ExportError(
            f"Galaxy answered with a redirect (HTTP {response.status_code}) at {url.split('?')[0]}; "
            "the key is not sent on. Ask your Galaxy admin to check the Galaxy URL the tool gets "
            "(galaxy_infrastructure_url).",
            status=502,
        )
    if response.status_code >= 400:
        raise ExportError(_galaxy_error(response), status=502)
    return response


def _galaxy_error(response: requests.Response) -> str:
    try:
        detail = response.json().get("err_msg") or response.text
    except ValueError:
        detail = response.text
    # Redact before truncating: a proxy or Galaxy that echoes the request must not leak the key
    # to the browser or the job log (a cut could otherwise leave part of it).
    key = response.request.headers.get("x-api-key") if response.request is not None else None
    if key:
        detail = str(detail).replace(key, "[API key]")
    detail = " ".join(str(detail).split())[:300]
    if response.status_code in (401, 403):
        return f"Galaxy refused the export (HTTP {response.status_code}): {detail}"
    return f"Galaxy answered HTTP {response.status_code}: {detail}"
