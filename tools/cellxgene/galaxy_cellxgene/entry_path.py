"""Serve only under the entry point's secret path: a WSGI layer in front of the viewer.

Galaxy's proxy (gx-it-proxy) routes a path-based entry point by the key and token in
`/interactivetool/ep/<key>/<token>/`. With `requires_path_in_url="True"` it forwards that full
path, and `inject="entry_point_path_for_label"` hands the same path to the job
(`GALAXY_CELLXGENE_ENTRY_POINT_PATH`). The token is the secret: a process that connects to the
viewer's port directly (Galaxy's Docker runner publishes it on every host interface; on the
no-container path any local process can reach 127.0.0.1) does not know it, so everything
outside the prefix is answered 404.

Inside the prefix the layer moves the prefix from PATH_INFO to SCRIPT_NAME, so cellxgene (and
the list tool's dispatcher) see the paths they always saw. cellxgene's page resolves its API
against `location.pathname` and its scripts and styles relative to the page, so they stay
under the prefix; the one reference that leaves it (the logo, `../static/...`) is corrected
by page_fixes.py.

Galaxy injects an empty path for domain-based entry points (`requires_domain="True"`: the
path is "/", stripped of its slash), and standalone runs set nothing: then there is no secret
path to check and the layer passes every request through (docs/security.md says what
protects the port then).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from galaxy_cellxgene.web import StartResponse, WsgiApp, mounted, redirect_to_slash, respond

ENV_NAME = "GALAXY_CELLXGENE_ENTRY_POINT_PATH"


def prefix_from_env(env: Mapping[str, str]) -> str:
    """The path prefix to serve under: "" (no check) or "/a/b" (no trailing slash)."""
    raw = env.get(ENV_NAME, "").strip()
    if "://" in raw:  # a full URL: only its path counts
        raw = urlsplit(raw).path
    path = "/" + "/".join(part for part in raw.split("/") if part)
    return "" if path == "/" else path


class EntryPathGate:
    """Pass requests under `prefix` to `app` with the prefix moved to SCRIPT_NAME; 404 the rest.

    One exception outside the prefix: `GET /health` answers a constant `{"status": "pass"}`
    produced here (the app is not called), because a container HEALTHCHECK runs inside the
    container and cannot know the entry point path.
    """

    def __init__(self, app: WsgiApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self._inside = (prefix + "/").encode("latin-1")

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        prefix = self.prefix
        if not prefix:
            return self.app(environ, start_response)
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        head = path[: len(prefix) + 1].encode("latin-1", "replace")
        # Constant time: a direct client must not learn the token one character at a time.
        if hmac.compare_digest(head, self._inside):
            return self.app(mounted(environ, prefix, path[len(prefix) :]), start_response)
        if hmac.compare_digest(path.encode("latin-1", "replace"), prefix.encode("latin-1")):
            return redirect_to_slash(start_response, environ, prefix.rsplit("/", 1)[-1])
        if path == "/health" and method in ("GET", "HEAD"):
            return respond(start_response, "200 OK", json.dumps({"status": "pass"}).encode(), "application/json")
        return respond(start_response, "404 Not Found", b"Not found\n", "text/plain; charset=utf-8")


def gate(app: WsgiApp, prefix: str) -> WsgiApp:
    """`app` itself when there is no prefix to enforce."""
    return EntryPathGate(app, prefix) if prefix else app
