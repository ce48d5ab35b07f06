"""Issue 15: the runtime pushes saves into the history only when its outputs are staged copies.

The real runtime (a subprocess, as Galaxy runs it) talks to a stand-in for Galaxy's API: a real
HTTP server on loopback that answers `POST /api/tools/fetch` and
`DELETE /api/histories/{id}/contents/{id}` the way Galaxy 26.1 does and records every request.
A stand-in, because this level has no Galaxy; tests/galaxy/test_deployments.py (its `pulsar`
deployment) runs the same code against a real Galaxy and a real Pulsar.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
from galaxy_cellxgene_testkit.stand_in import JsonHandler
from galaxy_cellxgene_testkit.ui_client import UiClient
from support.fixtures import wait_until

pytestmark = pytest.mark.slow

HISTORY = "f2db41e1fa331b3e"
# No API key: the runtime acts with the owner's Galaxy session, as the owner's browser sent it.
SESSION = "remote-save-test-session"
OWNER = "owner@example.org"
NAME = re.compile(r"^cellxgene on pbmc_demo\.h5ad: cell annotations \(saved at \d\d:\d\d\)$")


@dataclass
class GalaxyStandIn:
    url: str
    uploads: list[dict[str, Any]] = field(default_factory=list)  # {"names": [...], "files": {...}}
    deleted: list[str] = field(default_factory=list)
    delay: float = 0.0  # seconds before answering an upload (a slow Galaxy)
    staged: dict[str, bytes] = field(default_factory=dict)  # outputs Galaxy collected, by id
    lock: threading.Lock = field(default_factory=threading.Lock)

    def requests(self) -> int:
        with self.lock:
            return len(self.uploads) + len(self.deleted)


@pytest.fixture
def galaxy_stand_in() -> Iterator[GalaxyStandIn]:
    state = GalaxyStandIn("")

    class Handler(JsonHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path != "/api/tools/fetch" or self.headers.get("Cookie") != f"galaxysession={SESSION}":
                self.answer({"err_msg": "unexpected"}, 400)
                return
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw
            )
            fields = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
            targets = json.loads(fields["targets"].get_content())
            names = [element["name"] for element in targets[0]["elements"]]
            files = {name: fields[f"files_{i}|file_data"].get_content() for i, name in enumerate(names)}
            time.sleep(state.delay)
            with state.lock:
                first = sum(len(upload["names"]) for upload in state.uploads)
                state.uploads.append({"names": names, "files": files, "history": fields["history_id"].get_content()})
            ids = [f"pushed{first + i}" for i in range(len(names))]
            self.answer(
                {
                    "outputs": [{"id": i, "hid": 1, "name": n} for i, n in zip(ids, names, strict=True)],
                    "jobs": [{"id": "upload-job"}],
                }
            )

        def do_GET(self) -> None:
            if self.path == "/api/users/current":  # the owner gate's question (owner_gate.py)
                known = self.headers.get("Cookie") == f"galaxysession={SESSION}"
                self.answer({"email": OWNER} if known else {})
                return
            if self.headers.get("Cookie") != f"galaxysession={SESSION}":
                self.answer({"err_msg": "unexpected"}, 400)
                return
            with state.lock:  # the pushed copies carry the ids do_POST gave them, in order
                pushed = [data.encode() for upload in state.uploads for data in upload["files"].values()]
                contents = {**{f"pushed{i}": data for i, data in enumerate(pushed)}, **state.staged}
                deleted = set(state.deleted)
            if self.path.startswith(f"/api/histories/{HISTORY}/contents?"):
                listing = [
                    {
                        "id": i,
                        "state": "ok",
                        "deleted": i in deleted,
                        "file_size": len(data),
                        "history_content_type": "dataset",
                    }
                    for i, data in contents.items()
                ]
                self.answer(listing)
            elif (match := re.fullmatch(r"/api/datasets/(\w+)/display", self.path)) and match.group(1) in contents:
                data = contents[match.group(1)]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            else:
                self.answer({"err_msg": "unexpected"}, 400)

        def do_DELETE(self) -> None:
            match = re.fullmatch(rf"/api/histories/{HISTORY}/contents/(\w+)", self.path)
            if not match or self.headers.get("Cookie") != f"galaxysession={SESSION}":
                self.answer({"err_msg": "unexpected"}, 400)
                return
            with state.lock:
                state.deleted.append(match.group(1))
            self.answer({"deleted": True})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def galaxy_env(stand_in: GalaxyStandIn, staged: bool, debounce: float = 0.3) -> dict[str, str]:
    env = {
        "GALAXY_URL": stand_in.url,
        "GALAXY_CELLXGENE_OWNER": OWNER,
        "GALAXY_HISTORY_ID": HISTORY,
        "GALAXY_CELLXGENE_REMOTE_SAVE_DEBOUNCE": str(debounce),
    }
    if staged:
        env["GALAXY_CELLXGENE_OUTPUTS"] = "staged"
    return env


def as_owner(job: Any) -> Any:
    """The job's client sends the owner's Galaxy session, as the owner's browser does."""
    job.client = UiClient(job.url, cookie=SESSION)
    return job


def labels(n: int, shift: int = 0) -> list[str]:
    return [["T cell", "B cell", "NK cell"][(i + shift) % 3] for i in range(n)]


def quiet_for(seconds: float, stand_in: GalaxyStandIn, count: int) -> None:
    """Assert that no request beyond `count` arrives during `seconds` (absence has no event to wait on)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert stand_in.requests() == count, (stand_in.uploads, stand_in.deleted)
        time.sleep(0.05)


def test_galaxy_own_outputs_are_never_uploaded(runtime, galaxy_stand_in: GalaxyStandIn) -> None:
    """Local and container destinations: Galaxy's URL, history and owner are there, the flag is not."""
    job = as_owner(runtime(env=galaxy_env(galaxy_stand_in, staged=False)))
    n = job.client.schema()["dataframe"]["nObs"]
    assert job.client.put_labels({"remote_cat": labels(n)}).ok
    quiet_for(3.0, galaxy_stand_in, 0)  # ten times the debounce
    job.send(signal.SIGTERM)
    assert job.wait(30) == 143
    assert galaxy_stand_in.requests() == 0
    assert "staged" not in job.log


def test_staged_outputs_are_pushed_after_a_save_once_and_replaced(runtime, galaxy_stand_in: GalaxyStandIn) -> None:
    job = as_owner(runtime(env=galaxy_env(galaxy_stand_in, staged=True)))
    n = job.client.schema()["dataframe"]["nObs"]
    # Nothing saved yet: the outputs hold the start's (empty) state, which is no news.
    quiet_for(1.5, galaxy_stand_in, 0)

    assert job.client.put_labels({"remote_cat": labels(n)}).ok
    wait_until(lambda: galaxy_stand_in.uploads, 30, "the push after a save", job.proc)
    upload = galaxy_stand_in.uploads[0]
    assert upload["history"] == HISTORY
    assert len(upload["names"]) == 1 and NAME.match(upload["names"][0]), upload["names"]
    pushed = upload["files"][upload["names"][0]]
    assert pushed == job.annotations.read_text(), "the push must carry the saved file"
    assert "remote_cat" in pushed

    # The same labels saved again: new bytes (the header's time), same data: nothing is sent.
    assert job.client.put_labels({"remote_cat": labels(n)}).ok
    quiet_for(2.0, galaxy_stand_in, 1)

    # A real change: a new copy, and the older one is deleted (replaced, not duplicated).
    assert job.client.put_labels({"remote_cat": labels(n, shift=1)}).ok
    wait_until(lambda: len(galaxy_stand_in.deleted) == 1, 30, "the replacement", job.proc)
    assert len(galaxy_stand_in.uploads) == 2
    assert galaxy_stand_in.deleted == ["pushed0"]

    # A clean finish: staging will deliver the outputs, so the pushed copy is withdrawn.
    assert job.client.finish().ok
    assert job.wait(60) == 0
    assert galaxy_stand_in.deleted == ["pushed0", "pushed1"]
    assert len(galaxy_stand_in.uploads) == 2


def test_sigterm_pushes_what_is_unpushed(runtime, galaxy_stand_in: GalaxyStandIn) -> None:
    # A debounce longer than the test: only the SIGTERM path can push.
    job = as_owner(runtime(env=galaxy_env(galaxy_stand_in, staged=True, debounce=600)))
    n = job.client.schema()["dataframe"]["nObs"]
    assert job.client.put_labels({"remote_cat": labels(n, shift=2)}).ok
    quiet_for(1.0, galaxy_stand_in, 0)
    job.send(signal.SIGTERM)
    assert job.wait(30) == 143
    assert len(galaxy_stand_in.uploads) == 1, job.log
    assert NAME.match(galaxy_stand_in.uploads[0]["names"][0])
    assert "remote_cat" in next(iter(galaxy_stand_in.uploads[0]["files"].values()))


def test_sigterm_push_ends_inside_the_grace_period(runtime, galaxy_stand_in: GalaxyStandIn) -> None:
    """A Galaxy slower than the budget: the runtime gives up and exits before a runner's
    SIGKILL (Docker's stop waits 10 s), instead of hanging on the upload."""
    galaxy_stand_in.delay = 30.0
    job = as_owner(runtime(env=galaxy_env(galaxy_stand_in, staged=True, debounce=600)))
    n = job.client.schema()["dataframe"]["nObs"]
    assert job.client.put_labels({"remote_cat": labels(n)}).ok
    started = time.monotonic()
    job.send(signal.SIGTERM)
    assert job.wait(30) == 143
    assert time.monotonic() - started < 8.0, job.log


def test_a_viewer_whose_staging_directory_is_gone_exits(runtime, galaxy_stand_in: GalaxyStandIn) -> None:
    """After Stop on Pulsar the container outlives the SIGKILLed job shell; once Pulsar has
    deleted the job's directory (Galaxy collected it), the runtime ends itself."""
    import shutil

    job = as_owner(runtime(env=galaxy_env(galaxy_stand_in, staged=True)))
    shutil.rmtree(job.annotations.parent)
    assert job.wait(30) == 0
    assert "staging directory is gone" in job.log
    assert galaxy_stand_in.requests() == 0


def test_a_collected_job_drops_the_pushed_copy_its_staged_output_repeats(
    runtime, galaxy_stand_in: GalaxyStandIn
) -> None:
    """REST Pulsar after Stop: Galaxy collected the staged output (the last save) and Pulsar
    deleted the job's directory. The pushed copy holds the same save: it is deleted, and the
    staged output is what the history keeps."""
    import shutil

    job = as_owner(runtime(env=galaxy_env(galaxy_stand_in, staged=True)))
    n = job.client.schema()["dataframe"]["nObs"]
    assert job.client.put_labels({"remote_cat": labels(n)}).ok
    wait_until(lambda: galaxy_stand_in.uploads, 30, "the push after a save", job.proc)
    with galaxy_stand_in.lock:
        galaxy_stand_in.staged["staged0"] = job.annotations.read_bytes()
    shutil.rmtree(job.annotations.parent)
    assert job.wait(60) == 0, job.log
    assert galaxy_stand_in.deleted == ["pushed0"], job.log
    assert "copy deleted" in job.log


def test_an_uncollected_job_keeps_the_pushed_copy(runtime, galaxy_stand_in: GalaxyStandIn) -> None:
    """Message-queue Pulsar skips the staging of a stopped job: no history dataset holds the
    save, so the pushed copy is the only one and stays."""
    import shutil

    env = {**galaxy_env(galaxy_stand_in, staged=True), "GALAXY_CELLXGENE_REMOTE_SAVE_COLLECT_WAIT": "2"}
    job = as_owner(runtime(env=env))
    n = job.client.schema()["dataframe"]["nObs"]
    assert job.client.put_labels({"remote_cat": labels(n, shift=1)}).ok
    wait_until(lambda: galaxy_stand_in.uploads, 30, "the push after a save", job.proc)
    with galaxy_stand_in.lock:  # a dataset of the same size but other content is no match
        galaxy_stand_in.staged["other0"] = bytes(len(job.annotations.read_bytes()))
    shutil.rmtree(job.annotations.parent)
    assert job.wait(60) == 0, job.log
    assert galaxy_stand_in.deleted == [], job.log
