"""A stand-in for Galaxy's API, for the runtime tests that must see what it sends Galaxy.

A real HTTP server on loopback that answers the calls the runtime makes as the owner (galaxy_client.py)
the way Galaxy 26.1 does, and records every upload: who is this session (`GET /api/users/current`,
the owner gate), uploads (`POST /api/tools/fetch`), an upload's job (`GET /api/jobs/upload-job`),
the history's contents and a dataset's bytes, and deletions. Only the owner's session (`SESSION`,
the cookie the owner's browser sends) is accepted. A stand-in, because the fast lane has no Galaxy;
tests/galaxy and tests/browser run the same code against a real one.

Used by tests/integration/test_remote_save.py (pushes) and tests/multi/test_multi_galaxy.py (the
list tool's Export, subsets and differential expression tables). The fixture `galaxy_stand_in` is
registered in tests/conftest.py.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
from galaxy_cellxgene_testkit.stand_in import JsonHandler

HISTORY = "f2db41e1fa331b3e"
# No API key: the runtime acts with the owner's Galaxy session, as the owner's browser sent it.
SESSION = "remote-save-test-session"
OWNER = "owner@example.org"


@dataclass
class GalaxyStandIn:
    url: str
    # {"names": [...], "files": {name: text}, "raw": {name: bytes}, "history": id}
    uploads: list[dict[str, Any]] = field(default_factory=list)
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
            parts = [fields[f"files_{i}|file_data"] for i in range(len(names))]
            files = {name: part.get_content() for name, part in zip(names, parts, strict=True)}
            raw = {name: part.get_payload(decode=True) for name, part in zip(names, parts, strict=True)}
            time.sleep(state.delay)
            with state.lock:
                first = sum(len(upload["names"]) for upload in state.uploads)
                state.uploads.append(
                    {"names": names, "files": files, "raw": raw, "history": fields["history_id"].get_content()}
                )
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
            if self.path.startswith("/api/jobs/upload-job"):  # an upload's job, as the viewer polls it
                self.answer({"id": "upload-job", "state": "ok"})
                return
            with state.lock:  # the pushed copies carry the ids do_POST gave them, in order
                pushed = [data for upload in state.uploads for data in upload["raw"].values()]
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
