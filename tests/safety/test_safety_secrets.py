"""No secret of the user is in the job, and the one the viewer sees is never sent back or logged.

No API key enters the job (the tool XML injects none; Galaxy would put it in the argv of the
container's `podman run` line). The runtime acts with the owner's Galaxy session, the cookie the
owner's browser sends (owner_gate.py, galaxy_client.py). We hit every route a browser can
reach, including errors and an export against a stand-in Galaxy that echoes the cookie in its
error messages, and look for the session in every byte that comes back, in the job log and in
every file the job leaves.
"""

from __future__ import annotations

import secrets
import signal
import threading
import xml.etree.ElementTree as ET
import zlib
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import requests
from galaxy_cellxgene_testkit.stand_in import JsonHandler
from galaxy_cellxgene_testkit.ui_client import UiClient
from support.fixtures import DEMO

pytestmark = pytest.mark.slow
OWNER = "owner@example.org"
TOOLS = Path(__file__).resolve().parents[2] / "tools" / "cellxgene"
API = "api/v0.2/"
BINARY = {"Accept": "application/octet-stream"}


class FakeGalaxy(JsonHandler):
    """Just enough of Galaxy's API (a stand-in): who a session is, uploads, upload jobs; in `echo`
    mode it quotes the caller's session cookie in its errors."""

    mode: ClassVar[str] = "ok"
    seen_cookies: ClassVar[list[str]] = []
    owner_session: ClassVar[str] = ""

    def do_POST(self) -> None:
        cookie = self.headers.get("Cookie", "")
        self.seen_cookies.append(cookie)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.mode == "echo":
            self.answer(status=403, body={"err_msg": f"Session {cookie} is not valid.", "err_code": 403001})
        else:
            self.answer(status=200, body={"outputs": [{"id": "d1", "hid": 1, "name": "x"}], "jobs": [{"id": "j1"}]})

    def do_GET(self) -> None:
        cookie = self.headers.get("Cookie", "")
        if self.path == "/api/users/current":
            owner = cookie == f"galaxysession={self.owner_session}"
            self.answer(status=200, body={"email": OWNER} if owner else {})
        elif self.mode == "echo":
            self.answer(status=403, body={"err_msg": f"Session {cookie} is not valid.", "err_code": 403001})
        else:
            self.answer(status=200, body={"id": "j1", "state": "ok"})


@pytest.fixture
def fake_galaxy():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGalaxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def everything_a_browser_gets(url: str, session: requests.Session) -> list[requests.Response]:
    get = lambda path, **kw: session.get(url + path, timeout=30, **kw)  # noqa: E731
    responses = [
        get(""),
        get("index.html"),
        get("health"),
        get(API + "config"),
        get(API + "schema"),
        get(API + "colors"),
        get(API + "genesets", headers={"Accept": "application/json"}),
        get(API + "annotations/obs", params={"annotation-name": "louvain"}, headers=BINARY),
        get(API + "annotations/var", params={"annotation-name": "gene_symbols"}, headers=BINARY),
        get(API + "layout/obs", params={"layout-name": "umap"}, headers=BINARY),
        get(API + "data/var", params={"var:gene_symbols": "CD3D"}, headers=BINARY),
        get(API + "summarize/var", params={"method": "mean", "var:gene_symbols": "CD3D"}, headers=BINARY),
        get("galaxy/status"),
        get("galaxy/export"),
        get("galaxy/static/finish.js"),
        get("galaxy/static/export.js"),
        get("galaxy/static/../../app.py"),
        get("no/such/route"),
        get(API + "annotations/obs", params={"annotation-name": "no-such"}, headers=BINARY),
        session.put(url + API + "annotations/obs", data=zlib.compress(b"garbage"), timeout=30),
        session.put(url + API + "genesets", json={"tid": "x"}, timeout=30),
        session.post(
            url + API + "diffexp/obs",
            json={
                "mode": "topN",
                "count": 5,
                "set1": {"filter": {"obs": {"index": list(range(0, 100))}}},
                "set2": {"filter": {"obs": {"index": list(range(100, 200))}}},
            },
            timeout=60,
        ),
        session.post(url + API + "diffexp/obs", data="{", headers={"Content-Type": "application/json"}, timeout=30),
    ]
    return responses


def assert_key_absent(key: str, responses: list[requests.Response]) -> None:
    for response in responses:
        blob = response.content + "".join(f"{k}: {v}\n" for k, v in response.headers.items()).encode()
        assert key.encode() not in blob, f"the secret leaked in {response.request.method} {response.url}"


def test_no_tool_puts_a_credential_into_the_job() -> None:
    """Galaxy passes every <environment_variable> to a container as `-e "NAME=$NAME"` on the
    `podman run` line, readable by every local user in /proc/<pid>/cmdline: none may be a secret.
    The entry-point path is the one injected value left; the owner gate makes it no credential
    (docs/security.md)."""
    for tool in sorted(TOOLS.glob("*.xml")):
        if tool.name == "macros.xml":
            continue
        root = ET.parse(tool).getroot()
        for variable in root.iter("environment_variable"):
            name, inject = variable.get("name", ""), variable.get("inject")
            assert inject in (None, "entry_point_path_for_label"), f"{tool.name}: {name} injects {inject}"
            assert not any(word in name.upper() for word in ("KEY", "TOKEN", "SECRET", "PASSWORD")), name
            assert "api_key" not in (variable.text or "").lower(), f"{tool.name}: {name}"


def test_the_owner_session_is_in_no_response_and_no_log_line(runtime, fake_galaxy):
    session_value = "gxsession" + secrets.token_hex(16)
    FakeGalaxy.owner_session = session_value
    env = {
        "GALAXY_CELLXGENE_OWNER": OWNER,
        "GALAXY_URL": f"http://127.0.0.1:{fake_galaxy.server_port}/",
        "GALAXY_HISTORY_ID": "f2db41e1fa331b3e",
    }
    job = runtime(DEMO, env=env)
    session = requests.Session()
    # With a path-based entry point the browser sends Galaxy's session cookie to the viewer.
    session.headers["Cookie"] = f"galaxysession={session_value}"
    responses = everything_a_browser_gets(job.url, session)
    assert responses[0].ok and responses[2].ok and responses[3].ok
    assert UiClient(job.url, cookie=session_value).put_labels({"cell_type": ["T"] * 320}).ok

    # Export works (the session travelled to "Galaxy") and its answers carry no session.
    FakeGalaxy.mode = "ok"
    export_header = {"X-Galaxy-Cellxgene": "export"}  # what export.js sends (CSRF guard)
    exported = session.post(job.url + "galaxy/export", headers=export_header, timeout=60)
    assert exported.ok, exported.text
    assert f"galaxysession={session_value}" in FakeGalaxy.seen_cookies
    polled = session.get(job.url + "galaxy/export/jobs/j1", timeout=60)
    # A Galaxy (or a proxy in front of it) that quotes the session in an error must not leak it.
    FakeGalaxy.mode = "echo"
    polled_refused = session.get(job.url + "galaxy/export/jobs/j1", timeout=60)
    refused = session.post(job.url + "galaxy/export", headers=export_header, timeout=60)
    assert refused.status_code >= 400
    no_header = session.post(job.url + "galaxy/export", timeout=60)
    responses += [exported, polled, polled_refused, refused, no_header]
    responses.append(session.post(job.url + "galaxy/finish", headers={"X-Galaxy-Cellxgene": "finish"}, timeout=60))
    assert_key_absent(session_value, responses)

    assert job.wait(30) == 0
    assert session_value not in job.log, "Galaxy's session cookie is in the job log"
    # Files the job leaves behind for Galaxy to collect or keep.
    for path in job.job_dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert session_value.encode() not in path.read_bytes(), f"the session was written to {path}"


def test_the_session_is_not_in_the_log_after_a_stop(runtime):
    session_value = "gxsession" + secrets.token_hex(16)
    env = {"GALAXY_URL": "http://127.0.0.1:9/", "GALAXY_HISTORY_ID": "1"}  # no owner check: standalone
    job = runtime(DEMO, env=env)
    # Nothing listens on port 9: the export fails, and says so without the session.
    refused = requests.post(
        job.url + "galaxy/export",
        headers={"X-Galaxy-Cellxgene": "export", "Cookie": f"galaxysession={session_value}"},
        timeout=60,
    )
    assert refused.status_code >= 400 and session_value not in refused.text
    job.send(signal.SIGTERM)
    assert job.wait(10) == 143
    assert session_value not in job.log
