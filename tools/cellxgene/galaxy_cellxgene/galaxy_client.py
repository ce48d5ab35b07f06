"""The runtime's one door to Galaxy's API: who is asking, upload into the owner's history, read
and delete what we put there.

The job holds no API key (docs/security.md). Every call authenticates with the job owner's own
Galaxy session: the `galaxysession` cookie the owner's browser sends with each request to the
viewer (gx-it-proxy forwards it unchanged), proven to be the owner's by owner_gate.py. The
cookie lives only in this process's memory (`GalaxyLink.remember`); it is sent to Galaxy's URL
in a header, never echoed, never logged, and redacted from any error text Galaxy sends back.

Public API (export, remote save, collected, and any later writer of new datasets):
    GalaxyLink.from_env()            where Galaxy is, the owner's history, the last owner cookie
    GalaxyClient(link, cookie)       one caller's calls; `cookie` defaults to the last one seen
      .current_user()                the session's user (owner_gate.py)
      .upload_files(files)           put files into the owner's history (tools/fetch)
      .upload_file(path, name, ext)  the same for one file: {"id", "hid", "name", "job"}
      .job_state(job_id), .delete_dataset(id), .history_listing(keys), .dataset_content(id)
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ENV_URL = "GALAXY_URL"
ENV_HISTORY = "GALAXY_HISTORY_ID"
# Galaxy's session cookie name; an admin who renamed it (a prefix per instance) says so here.
ENV_COOKIE_NAME = "GALAXY_CELLXGENE_SESSION_COOKIE"
DEFAULT_COOKIE_NAME = "galaxysession"
# Galaxy's cookie is a hex session key; anything outside this alphabet is not one, and must not
# reach a header we build.
COOKIE_VALUE = re.compile(r"^[A-Za-z0-9._~+/=-]{1,4096}$")

# Galaxy answers the upload request at once and then runs an upload job like any other
# job (seconds to a minute on a busy server); the page polls that job through us.
REQUEST_TIMEOUT = 60.0
TERMINAL_BAD = {"error", "failed", "deleted", "deleting", "stopped", "skipped"}


class GalaxyCallError(RuntimeError):
    """A failure the user can act on; the message may be shown in the viewer."""

    def __init__(self, message: str, status: int = 502, galaxy_status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # what the viewer answers the browser
        self.galaxy_status = galaxy_status  # what Galaxy answered, if it answered


class NoOwnerSession(GalaxyCallError):
    """No owner's Galaxy session has been seen yet: nothing to authenticate with."""

    def __init__(self) -> None:
        super().__init__(
            "Galaxy cannot be reached on your behalf: this viewer has not seen your Galaxy session "
            "(are you signed in to Galaxy in this browser?).",
            status=401,
        )


def cookie_from_header(header: str, name: str = DEFAULT_COOKIE_NAME) -> str | None:
    """The value of cookie `name` in a Cookie request header, or None (absent or malformed)."""
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip() == name:
            value = value.strip().strip('"')
            return value if COOKIE_VALUE.match(value) else None
    return None


@dataclass
class GalaxyLink:
    """Galaxy's URL, the owner's history, and the owner's session as last seen (memory only)."""

    url: str | None
    history_id: str | None
    cookie_name: str = DEFAULT_COOKIE_NAME
    _cookie: str | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GalaxyLink:
        env = os.environ if env is None else env
        url = env.get(ENV_URL, "").strip()
        history = env.get(ENV_HISTORY, "").strip()
        name = env.get(ENV_COOKIE_NAME, "").strip() or DEFAULT_COOKIE_NAME
        return cls(url.rstrip("/") + "/" if url else None, history or None, name)

    @property
    def can_write(self) -> bool:
        """Galaxy's URL and the owner's history are known (the session comes with requests)."""
        return bool(self.url and self.history_id)

    def missing(self) -> list[str]:
        return [name for name, value in ((ENV_URL, self.url), (ENV_HISTORY, self.history_id)) if not value]

    def remember(self, cookie: str) -> None:
        """The session of a request proven to be the owner's: the one later pushes use."""
        with self._lock:
            self._cookie = cookie

    def cookie(self) -> str | None:
        with self._lock:
            return self._cookie

    def cookie_in(self, headers: Mapping[str, str]) -> str | None:
        return cookie_from_header(headers.get("Cookie", ""), self.cookie_name)

    def client(self, cookie: str | None = None, session: requests.Session | None = None) -> GalaxyClient:
        return GalaxyClient(self, cookie, session)


class GalaxyClient:
    """Calls to Galaxy as the owner: the given session cookie, else the last one remembered."""

    def __init__(self, link: GalaxyLink, cookie: str | None = None, session: requests.Session | None = None) -> None:
        if not link.url:
            raise GalaxyCallError(f"Galaxy's URL is unknown: the job environment lacks {ENV_URL}.", status=501)
        self.link = link
        self.url = link.url
        self._cookie = cookie or link.cookie()
        self.http = session or requests.Session()

    def __repr__(self) -> str:  # keep the session out of tracebacks and debug logs
        return f"GalaxyClient(url={self.url!r}, history_id={self.link.history_id!r})"

    # -- the calls -----------------------------------------------------------------------

    def current_user(self) -> dict[str, Any]:
        """Galaxy's /api/users/current for this session: an anonymous session has no email."""
        return self._call("get", "api/users/current").json()

    def upload_files(self, files: Sequence[tuple[Path, str, str]]) -> dict[str, Any]:
        """Upload (path, name, ext) files into the owner's history with /api/tools/fetch; return
        once Galaxy has accepted them: {"datasets": [{"id", "hid", "name"}...], "jobs": [ids]}
        in the order given. The datasets become `ok` when Galaxy's upload jobs end (job_state)."""
        if not self.link.history_id:
            raise GalaxyCallError(f"The owner's history is unknown: the job environment lacks {ENV_HISTORY}.", 501)
        elements = [{"src": "files", "ext": ext, "name": name, "to_posix_lines": False} for _, name, ext in files]
        form = {
            "history_id": self.link.history_id,
            "targets": json.dumps([{"destination": {"type": "hdas"}, "elements": elements}]),
        }
        handles = [path.open("rb") for path, _, _ in files]
        try:
            multipart = [
                (f"files_{i}|file_data", (path.name, handle, "text/csv" if ext == "csv" else "text/plain"))
                for i, ((path, _, ext), handle) in enumerate(zip(files, handles, strict=True))
            ]
            created = self._call("post", "api/tools/fetch", data=form, files=multipart).json()
        finally:
            for handle in handles:
                handle.close()
        datasets = [{"id": o.get("id"), "hid": o.get("hid"), "name": o.get("name")} for o in created.get("outputs", [])]
        jobs = [job.get("id") for job in created.get("jobs", []) if job.get("id")]
        return {"history_id": self.link.history_id, "datasets": datasets, "jobs": jobs}

    def upload_file(self, path: Path, name: str, ext: str = "auto") -> dict[str, Any]:
        """Put one file into the owner's history as a new dataset (any Galaxy datatype, h5ad
        included): {"id", "hid", "name", "job"}. Wait for it with job_state(result["job"])."""
        result = self.upload_files([(Path(path), name, ext)])
        dataset = result["datasets"][0] if result["datasets"] else {}
        return {**dataset, "job": result["jobs"][0] if result["jobs"] else None}

    def job_state(self, job_id: str) -> str:
        """An upload job's state; a failed upload raises with Galaxy's own last words."""
        job = self._call("get", f"api/jobs/{job_id}", params={"full": "true"}).json()
        state = str(job.get("state", ""))
        if state in TERMINAL_BAD:
            detail = (job.get("tool_stderr") or job.get("stderr") or "").strip().splitlines()
            raise GalaxyCallError(
                f"Galaxy could not store the upload (upload job {state})" + (f": {detail[-1]}" if detail else ".")
            )
        return state

    def delete_dataset(self, dataset_id: str) -> None:
        self._call("delete", f"api/histories/{self.link.history_id}/contents/{dataset_id}")

    def history_listing(self, keys: str) -> list[dict[str, Any]]:
        contents = f"api/histories/{self.link.history_id}/contents"
        return self._call("get", contents, params={"v": "dev", "keys": keys}).json()

    def dataset_content(self, dataset_id: str) -> bytes:
        return self._call("get", f"api/datasets/{dataset_id}/display").content

    # -- plumbing ------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        if not self._cookie:
            raise NoOwnerSession()
        url = self.url + path
        # Only Galaxy's session cookie travels: never the rest of what the browser sent us.
        headers = {"Cookie": f"{self.link.cookie_name}={self._cookie}"}
        try:
            # No redirects: requests would resend the cookie header to wherever one points.
            response = self.http.request(
                method, url, headers=headers, timeout=REQUEST_TIMEOUT, allow_redirects=False, **kwargs
            )
        except requests.RequestException as err:
            # The exception text names the URL only; the session travels in a header.
            raise GalaxyCallError(f"Galaxy is not reachable at {url.split('?')[0]}: {type(err).__name__}") from err
        if response.is_redirect:
            raise GalaxyCallError(
                f"Galaxy answered with a redirect (HTTP {response.status_code}) at {url.split('?')[0]}; "
                "the session is not sent on. Ask your Galaxy admin to check the Galaxy URL the tool gets "
                "(galaxy_infrastructure_url).",
                status=502,
            )
        if response.status_code >= 400:
            raise GalaxyCallError(self._error_text(response), status=502, galaxy_status=response.status_code)
        return response

    def _error_text(self, response: requests.Response) -> str:
        try:
            detail = response.json().get("err_msg") or response.text
        except (ValueError, AttributeError):
            detail = response.text
        # Redact before truncating: a proxy or Galaxy that echoes the request must not leak the
        # session to the browser or the job log (a cut could otherwise leave part of it).
        detail = str(detail).replace(str(self._cookie), "[session]")
        detail = " ".join(detail.split())[:300]
        if response.status_code in (401, 403):
            return f"Galaxy refused the request (HTTP {response.status_code}): {detail}"
        return f"Galaxy answered HTTP {response.status_code}: {detail}"
