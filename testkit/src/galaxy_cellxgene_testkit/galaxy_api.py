"""A small Galaxy API client (requests only) shared by scripts/galaxy/*.py and the tests.

It runs in three interpreters: Galaxy's venv and the Tool Shed's (scripts/galaxy.sh and
scripts/toolshed.sh put testkit/src on PYTHONPATH for scripts/galaxy/*.py) and the runtime .venv
(pytest, scripts), so it uses nothing but the standard library and requests. Every wait polls a condition against a
deadline and raises with what it last saw, so a hung job fails a test instead of hanging it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import requests

from galaxy_cellxgene_testkit import signed_in

T = TypeVar("T")

TERMINAL_JOB_STATES = {"ok", "error", "failed", "deleted", "deleting", "stopped", "skipped", "paused"}
TERMINAL_DATASET_STATES = {"ok", "error", "failed_metadata", "discarded", "deferred", "paused", "empty"}


class GalaxyError(RuntimeError):
    pass


def poll(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 0.5,
) -> T:
    """Call probe until it returns something other than None; raise after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value is not None:
                return value
            last_error = None
        except (requests.ConnectionError, requests.Timeout) as error:
            last_error = error
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s{detail}")
        time.sleep(interval)


class GalaxyApi:
    """One user's view of a Galaxy server, keyed by an API key."""

    def __init__(self, url: str, key: str | None, timeout: float = 60) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.session = requests.Session()
        self.session_cookie: str | None = None  # the browser session of sign_in (viewers want it)
        if key:
            self.session.headers["x-api-key"] = key

    # -- plumbing -------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method, f"{self.url}/api/{path.lstrip('/')}", **kwargs)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if not response.ok:
            raise GalaxyError(f"{method} /api/{path} -> {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, payload: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.call("POST", path, json=payload, **kwargs)

    def put(self, path: str, payload: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.call("PUT", path, json=payload, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.call("DELETE", path, **kwargs)

    # -- server and users -----------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return self.get("version")

    def wait_until_up(self, timeout: float = 300, alive: Callable[[], bool] | None = None) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            if alive is not None and not alive():
                raise GalaxyError("the Galaxy process exited before it answered")
            response = self.request("GET", "version", timeout=5)
            return response.json() if response.ok else None

        return poll(f"{self.url}/api/version", probe, timeout, interval=0.5)

    def find_user(self, email: str) -> dict[str, Any] | None:
        for user in self.get("users", params={"f_email": email}):
            if user.get("email") == email:
                return user
        return None

    def ensure_user(self, email: str, password: str, username: str) -> dict[str, Any]:
        """Create the user once; later calls find it (needs an admin key)."""
        user = self.find_user(email)
        if user is None:
            user = self.post("users", {"email": email, "password": password, "username": username})
        return user

    def sign_in(self, email: str, password: str, remember: bool = True) -> str:
        """Sign in as a browser does (Galaxy's /user/login); returns the `galaxysession` cookie and
        (`remember`) keeps it for this origin, so UiClients to viewers on it send it (signed_in.py)."""
        browser = requests.Session()
        # Galaxy 26 wants the session's CSRF token with the form; its login page carries it.
        page = browser.get(f"{self.url}/login/start", timeout=self.timeout).text
        token = re.search(r'session_csrf_token"?\s*[=:]\s*"([^"]+)"', page)
        form = {"login": email, "password": password, "session_csrf_token": token.group(1) if token else None}
        response = browser.post(f"{self.url}/user/login", json=form, timeout=self.timeout)
        cookie = browser.cookies.get(signed_in.COOKIE_NAME)
        if not response.ok or not cookie:
            raise GalaxyError(f"sign-in of {email} -> {response.status_code}: {response.text[:500]}")
        if remember:  # the origin's default session: UiClients without a cookie send it
            signed_in.remember(self.url, cookie)
        return cookie

    def new_api_key(self, user_id: str) -> str:
        # POST makes a fresh key and retires the previous one: callers store what they get.
        return self.post(f"users/{user_id}/api_key")

    # -- histories and datasets -----------------------------------------------------------

    def new_history(self, name: str) -> str:
        return self.post("histories", {"name": name})["id"]

    def find_history(self, name: str) -> str | None:
        for history in self.get("histories", params={"q": "name", "qv": name}):
            if history.get("name") == name and not history.get("deleted"):
                return history["id"]
        return None

    def history_contents(self, history_id: str) -> list[dict[str, Any]]:
        keys = "id,name,state,extension,hid,deleted,visible"
        return self.get(f"histories/{history_id}/contents", params={"v": "dev", "keys": keys})

    def upload(self, history_id: str, path: Path, name: str | None = None, ext: str = "auto") -> dict[str, Any]:
        """Upload a local file with /api/tools/fetch as the web client's plain uploads do."""
        targets = [
            {
                "destination": {"type": "hdas"},
                "elements": [{"src": "files", "name": name or path.name, "ext": ext, "dbkey": "?"}],
            }
        ]
        data = {"history_id": history_id, "targets": json.dumps(targets), "auto_decompress": "true"}
        with path.open("rb") as handle:
            response = self.request("POST", "tools/fetch", data=data, files={"files_0|file_data": (path.name, handle)})
        if not response.ok:
            raise GalaxyError(f"upload of {path} -> {response.status_code}: {response.text[:2000]}")
        result = response.json()
        return result["outputs"][0]

    def upload_and_wait(
        self, history_id: str, path: Path, name: str | None = None, ext: str = "auto", timeout: float = 600
    ) -> dict[str, Any]:
        output = self.upload(history_id, path, name=name, ext=ext)
        return self.wait_for_dataset(output["id"], timeout=timeout)

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        return self.get(f"datasets/{dataset_id}")

    def wait_for_dataset(self, dataset_id: str, timeout: float = 600, require_ok: bool = True) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            dataset = self.dataset(dataset_id)
            return dataset if dataset["state"] in TERMINAL_DATASET_STATES else None

        dataset = poll(f"dataset {dataset_id}", probe, timeout)
        if require_ok and dataset["state"] != "ok":
            raise GalaxyError(f"dataset {dataset_id} ended {dataset['state']}: {dataset.get('misc_info')}")
        return dataset

    def dataset_bytes(self, dataset_id: str) -> bytes:
        # to_ext makes Galaxy send the stored file itself (for binary types too, not a preview page).
        extension = self.dataset(dataset_id)["extension"]
        response = self.request("GET", f"datasets/{dataset_id}/display", params={"to_ext": extension})
        if not response.ok:
            raise GalaxyError(f"display of {dataset_id} -> {response.status_code}: {response.text[:500]}")
        return response.content

    # -- tools, jobs, entry points --------------------------------------------------------

    def run_tool(self, tool_id: str, history_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """Start a tool with flat 'section|param' inputs; returns {'jobs': [...], 'outputs': [...]}."""
        return self.post("tools", {"tool_id": tool_id, "history_id": history_id, "inputs": inputs})

    def job(self, job_id: str, full: bool = True) -> dict[str, Any]:
        return self.get(f"jobs/{job_id}", params={"full": str(full).lower()})

    def wait_for_job(self, job_id: str, timeout: float = 300) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            job = self.job(job_id, full=False)
            return job if job["state"] in TERMINAL_JOB_STATES else None

        poll(f"job {job_id}", probe, timeout)
        return self.job(job_id, full=True)

    def wait_for_jobs(self, job_ids: Iterable[str], timeout: float = 300) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        return [self.wait_for_job(job_id, max(1.0, deadline - time.monotonic())) for job_id in job_ids]

    def entry_points(self, job_id: str) -> list[dict[str, Any]]:
        return self.get("entry_points", params={"job_id": job_id})

    def wait_for_entry_point(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        """Wait until the job's entry point is active and has a target; fail early if the job ends."""

        def probe() -> dict[str, Any] | None:
            for entry_point in self.entry_points(job_id):
                if entry_point.get("active") and entry_point.get("target"):
                    return entry_point
            job = self.job(job_id, full=False)
            if job["state"] in TERMINAL_JOB_STATES:
                full = self.job(job_id, full=True)
                raise GalaxyError(
                    f"job {job_id} ended {job['state']} before its entry point became active; "
                    f"stderr: {(full.get('tool_stderr') or full.get('stderr') or '')[-2000:]}"
                )
            return None

        return poll(f"entry point of job {job_id}", probe, timeout)

    def stop_entry_point(self, entry_point_id: str) -> None:
        """What the Stop button in Galaxy's interface does."""
        self.delete(f"entry_points/{entry_point_id}")

    def stop_and_settle(self, entry_point_id: str, job_id: str, timeout: float = 600) -> dict[str, Any]:
        """Stop, then wait until Galaxy has finished the job (see `settle_after_stop`)."""
        self.stop_entry_point(entry_point_id)
        return self.settle_after_stop(job_id, timeout)

    def settle_after_stop(self, job_id: str, timeout: float = 600) -> dict[str, Any]:
        """Wait past the job's `stop` and `stopped` states until Galaxy has finished it."""

        def settled() -> dict[str, Any] | None:
            state = self.job(job_id, full=False)["state"]
            return self.job(job_id) if state in {"ok", "error", "failed", "deleted"} else None

        return poll(f"job {job_id} to end after Stop", settled, timeout)

    def entry_point_url(self, entry_point: dict[str, Any]) -> str:
        """Absolute URL of an entry point; path-based targets are relative to Galaxy's origin."""
        target = entry_point["target"]
        if target.startswith("http"):
            return target
        return self.url + "/" + target.lstrip("/")
