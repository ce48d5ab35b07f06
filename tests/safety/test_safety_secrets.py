"""The Galaxy API key the job receives never reaches the browser or the job log.

The runtime gets GALAXY_API_KEY (the tool XML injects it for "Export to Galaxy"). We hit every
route a browser can reach, including errors and an export against a fake Galaxy that echoes
the key back in its error messages, and look for the key in every byte that comes back.
"""

from __future__ import annotations

import secrets
import signal
import threading
import zlib
from http.server import ThreadingHTTPServer
from typing import ClassVar

import pytest
import requests
from galaxy_cellxgene_testkit.stand_in import JsonHandler
from support.fixtures import DEMO

pytestmark = pytest.mark.slow
API = "api/v0.2/"
BINARY = {"Accept": "application/octet-stream"}


class FakeGalaxy(JsonHandler):
    """Just enough of Galaxy's upload API; in `echo` mode it quotes the caller's key in errors."""

    mode: ClassVar[str] = "ok"
    seen_keys: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        key = self.headers.get("x-api-key", "")
        self.seen_keys.append(key)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.mode == "echo":
            self.answer(status=403, body={"err_msg": f"Provided API key {key} is not valid.", "err_code": 403001})
        else:
            self.answer(status=200, body={"outputs": [{"id": "d1", "hid": 1, "name": "x"}], "jobs": [{"id": "j1"}]})

    def do_GET(self) -> None:
        key = self.headers.get("x-api-key", "")
        if self.mode == "echo":
            self.answer(status=403, body={"err_msg": f"Provided API key {key} is not valid.", "err_code": 403001})
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
        assert key.encode() not in blob, f"the API key leaked in {response.request.method} {response.url}"


def test_the_api_key_is_in_no_response_and_no_log_line(runtime, fake_galaxy):
    key = "gxkey" + secrets.token_hex(16)
    env = {
        "GALAXY_API_KEY": key,
        "GALAXY_URL": f"http://127.0.0.1:{fake_galaxy.server_port}/",
        "GALAXY_HISTORY_ID": "f2db41e1fa331b3e",
    }
    job = runtime(DEMO, env=env)
    session = requests.Session()
    # With a path-based entry point the browser also sends Galaxy's session cookie to the viewer.
    galaxy_cookie = "gxsession" + secrets.token_hex(16)
    session.cookies.set("galaxysession", galaxy_cookie)
    responses = everything_a_browser_gets(job.url, session)
    assert responses[0].ok and responses[2].ok and responses[3].ok
    assert job.client.put_labels({"cell_type": ["T"] * 320}).ok

    # Export works (the key travelled to "Galaxy") and its answers carry no key.
    FakeGalaxy.mode = "ok"
    export_header = {"X-Galaxy-Cellxgene": "export"}  # what export.js sends (CSRF guard)
    exported = session.post(job.url + "galaxy/export", headers=export_header, timeout=60)
    assert exported.ok, exported.text
    assert key in FakeGalaxy.seen_keys
    polled = session.get(job.url + "galaxy/export/jobs/j1", timeout=60)
    # A Galaxy (or a proxy in front of it) that quotes the key in an error must not leak it onward.
    FakeGalaxy.mode = "echo"
    polled_refused = session.get(job.url + "galaxy/export/jobs/j1", timeout=60)
    refused = session.post(job.url + "galaxy/export", headers=export_header, timeout=60)
    assert refused.status_code >= 400
    no_header = session.post(job.url + "galaxy/export", timeout=60)
    responses += [exported, polled, polled_refused, refused, no_header]
    responses.append(session.post(job.url + "galaxy/finish", headers={"X-Galaxy-Cellxgene": "finish"}, timeout=60))
    assert_key_absent(key, responses)

    assert job.wait(30) == 0
    assert key not in job.log, "the API key is in the job log"
    assert galaxy_cookie not in job.log, "Galaxy's session cookie is in the job log"
    assert_key_absent(galaxy_cookie, responses)
    # Files the job leaves behind for Galaxy to collect or keep.
    for path in job.job_dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert key.encode() not in path.read_bytes(), f"the API key was written to {path}"


def test_the_api_key_is_not_in_the_log_after_a_stop(runtime):
    key = "gxkey" + secrets.token_hex(16)
    job = runtime(DEMO, env={"GALAXY_API_KEY": key, "GALAXY_URL": "http://127.0.0.1:9/", "GALAXY_HISTORY_ID": "1"})
    # Nothing listens on port 9: the export fails, and says so without the key.
    refused = requests.post(job.url + "galaxy/export", headers={"X-Galaxy-Cellxgene": "export"}, timeout=60)
    assert refused.status_code >= 400 and key not in refused.text
    job.send(signal.SIGTERM)
    assert job.wait(10) == 143
    assert key not in job.log
