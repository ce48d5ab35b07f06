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
import time
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

# Galaxy answers the upload request at once; the upload job then runs like any other job.
# We wait a bounded time for it so the user sees "in your history" or the real failure.
UPLOAD_WAIT_SECONDS = 90.0
POLL_SECONDS = 1.0
REQUEST_TIMEOUT = 60.0
TERMINAL_OK = {"ok"}
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


def register(app: flask.Flask, annotations_path: Path, gene_sets_path: Path, dataset_name: str) -> None:
    """Add `GET/POST /galaxy/export` to cellxgene's app (relative to the entry point)."""
    annotations_path = Path(annotations_path)
    gene_sets_path = Path(gene_sets_path)
    bp = flask.Blueprint("galaxy_export", __name__, url_prefix="/galaxy")

    @bp.get("/export")
    def export_info():
        if not available():
            return _json({"enabled": False, "message": missing_message()}, 501)
        return _json({"enabled": True})

    @bp.post("/export")
    def export():
        target = target_from_env()
        if target is None:
            return _json({"enabled": False, "message": missing_message()}, 501)
        try:
            result = export_files(target, annotations_path, gene_sets_path, dataset_name)
        except ExportError as err:
            log.warning("export to Galaxy failed: %s", err)
            return _json({"ok": False, "message": str(err)}, err.status)
        log.info(
            "exported %s to Galaxy history %s",
            ", ".join(d["name"] for d in result["datasets"]),
            target.history_id,
        )
        return _json({"ok": True, **result})

    app.register_blueprint(bp)


def _json(body: dict[str, Any], status: int = 200) -> flask.Response:
    response = flask.jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def export_files(
    target: GalaxyTarget,
    annotations_path: Path,
    gene_sets_path: Path,
    dataset_name: str,
    *,
    wait_seconds: float = UPLOAD_WAIT_SECONDS,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """Upload whichever of the two files hold a save; wait (bounded) for Galaxy to accept them."""
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    files = [
        (annotations_path, f"{dataset_name}: cellxgene annotations (exported {stamp})"),
        (gene_sets_path, f"{dataset_name}: cellxgene gene sets (exported {stamp})"),
    ]
    # An empty labels file means every category was deleted; Galaxy refuses empty uploads
    # and there is nothing to keep, so only files with content travel.
    present = [(path, name) for path, name in files if path.is_file() and path.stat().st_size > 0]
    skipped = [name for path, name in files if (path, name) not in present]
    if not present:
        raise ExportError(
            "Nothing to export yet: no labels or gene sets have been saved in this session. "
            "Create a category or a gene set first (cellxgene saves within a few seconds).",
            status=409,
        )

    http = session or requests.Session()
    http.headers["x-api-key"] = target.key
    elements = [{"src": "files", "ext": "csv", "name": name, "to_posix_lines": False} for _, name in present]
    form = {
        "history_id": target.history_id,
        "targets": json.dumps([{"destination": {"type": "hdas"}, "elements": elements}]),
    }
    handles = [path.open("rb") for path, _ in present]
    try:
        multipart = [
            (f"files_{i}|file_data", (path.name, handle, "text/csv"))
            for i, ((path, _), handle) in enumerate(zip(present, handles, strict=True))
        ]
        response = _call(http, "post", target.url + "api/tools/fetch", data=form, files=multipart)
    finally:
        for handle in handles:
            handle.close()

    created = response.json()
    datasets = [
        {"id": out.get("id"), "hid": out.get("hid"), "name": out.get("name")} for out in created.get("outputs", [])
    ]
    jobs = [job.get("id") for job in created.get("jobs", []) if job.get("id")]
    states = _wait_for_jobs(http, target, jobs, wait_seconds)
    return {
        "history_id": target.history_id,
        "datasets": datasets,
        "skipped": skipped,
        "state": "ok" if states and all(s in TERMINAL_OK for s in states) else "uploading",
    }


def _wait_for_jobs(http: requests.Session, target: GalaxyTarget, job_ids: list[str], wait_seconds: float) -> list[str]:
    deadline = time.monotonic() + wait_seconds
    states: dict[str, str] = {}
    while True:
        for job_id in job_ids:
            if states.get(job_id) in TERMINAL_OK:
                continue
            job = _call(http, "get", target.url + f"api/jobs/{job_id}", params={"full": "true"}).json()
            states[job_id] = job.get("state", "")
            if states[job_id] in TERMINAL_BAD:
                detail = (job.get("stderr") or job.get("tool_stderr") or "").strip().splitlines()
                raise ExportError(
                    f"Galaxy could not store the export (upload job {states[job_id]})"
                    + (f": {detail[-1]}" if detail else ".")
                )
        if all(states.get(j) in TERMINAL_OK for j in job_ids) or time.monotonic() >= deadline:
            return [states.get(j, "") for j in job_ids]
        time.sleep(POLL_SECONDS)


def _call(http: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    try:
        response = http.request(method, url, timeout=REQUEST_TIMEOUT, **kwargs)
    except requests.RequestException as err:
        # The exception text names the URL only; the key travels in a header.
        raise ExportError(f"Galaxy is not reachable at {url.split('?')[0]}: {type(err).__name__}") from err
    if response.status_code >= 400:
        raise ExportError(_galaxy_error(response), status=502)
    return response


def _galaxy_error(response: requests.Response) -> str:
    try:
        detail = response.json().get("err_msg") or response.text
    except ValueError:
        detail = response.text
    detail = " ".join(str(detail).split())[:300]
    if response.status_code in (401, 403):
        return f"Galaxy refused the export (HTTP {response.status_code}): {detail}"
    return f"Galaxy answered HTTP {response.status_code}: {detail}"
