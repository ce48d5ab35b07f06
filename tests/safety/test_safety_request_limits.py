"""What one request can make the viewer hold, and what it may overwrite (limits.py).

A stranger who reaches the port, or a page gone wrong, must not be able to exhaust the job's
memory with a small request, nor replace the user's last good save with garbage.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pandas as pd
import pytest
import requests
from galaxy_cellxgene.galaxy_client import GalaxyLink
from galaxy_cellxgene.galaxy_export import ExportError, export_files
from galaxy_cellxgene.limits import GENE_SETS_MAX_BYTES, MIB, label_bytes_limit
from server.common.fbs.matrix import encode_matrix_fbs
from support.safety import read_output

pytestmark = pytest.mark.slow
LABELS = "api/v0.2/annotations/obs"
OCTETS = {"Content-Type": "application/octet-stream"}


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def zlib_bomb(inflated_bytes: int) -> bytes:
    """A zlib stream of zeros: about 1 KiB per MiB it inflates to."""
    deflater = zlib.compressobj(9)
    chunk = bytes(MIB)
    parts = [deflater.compress(chunk) for _ in range(inflated_bytes // MIB)]
    return b"".join(parts) + deflater.flush()


def put_raw(job, body: bytes, **kwargs) -> requests.Response:
    return job.client.session.put(job.client.url(LABELS), data=body, headers=OCTETS, timeout=60, **kwargs)


@pytest.fixture
def saved(runtime):
    """A viewer on the demo dataset with one good save in its output."""
    job = runtime()
    n = int(job.client.schema()["dataframe"]["nObs"])
    good = {"mine": [f"group{i % 3}" for i in range(n)]}
    assert job.client.put_labels(good).status_code == 200
    assert read_output(job.annotations) == good
    return job, n, good


def test_a_zlib_bomb_is_refused_within_seconds_in_bounded_memory(saved) -> None:
    job, n, good = saved
    before = peak_rss_mib(job.proc.pid)
    bomb = zlib_bomb(1 << 30)  # 1 GiB of zeros in about 1 MiB
    assert len(bomb) < 2 * MIB
    response = put_raw(job, bomb)
    assert response.status_code == 413, response.text
    assert "nothing was saved" in response.json()["message"]
    assert response.elapsed.total_seconds() < 10
    # Inflation stops at the dataset's label limit (16 MiB + 1 KiB a cell; 16.3 MiB here) plus one
    # 1 MiB piece; the rest is allocator slack. cellxgene alone grew by about 2 GiB.
    grown = peak_rss_mib(job.proc.pid) - before
    assert grown < label_bytes_limit(n) / MIB + 48, f"peak memory grew by {grown:.0f} MiB"
    assert read_output(job.annotations) == good  # the last good save is still the output


@pytest.mark.parametrize(
    "body, status",
    [
        (zlib.compress(bytes(4096)), 400),  # inflates to zeros: read as "no categories" by cellxgene
        (zlib.compress(b"not a flatbuffer at all"), 400),
        (zlib.compress(bytes(encode_matrix_fbs(pd.DataFrame({"x": ["a"] * 3}))))[:-6], 400),  # truncated stream
        (b"\x00\x01 not zlib", 400),
        (b"", 400),
    ],
    ids=["zeros", "garbage", "truncated", "not-zlib", "empty"],
)
def test_a_malformed_label_save_never_replaces_the_last_good_one(saved, body: bytes, status: int) -> None:
    job, _, good = saved
    response = put_raw(job, body)
    assert response.status_code == status, response.text
    assert read_output(job.annotations) == good
    assert job.client.get_labels()["mine"].tolist() == good["mine"]


def test_deleting_every_category_still_works(saved) -> None:
    """What the UI sends when the last category is deleted: a well-formed matrix with no columns."""
    job, n, _ = saved
    empty = encode_matrix_fbs(pd.DataFrame(index=range(n)), col_idx=pd.Index([]))
    assert put_raw(job, zlib.compress(bytes(empty))).status_code == 200
    assert read_output(job.annotations) == {}


def test_bodies_over_their_route_limit_are_refused_before_they_are_read(saved) -> None:
    job, _, good = saved
    too_big = b"x" * (GENE_SETS_MAX_BYTES + 1)
    response = job.client.session.put(
        job.client.url("api/v0.2/genesets"), data=too_big, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert response.status_code == 413
    # Without a Content-Length (chunked), the limit holds while reading.
    chunks = (bytes(MIB) for _ in range(label_bytes_limit(320) // MIB + 2))
    response = job.client.session.put(job.client.url(LABELS), data=chunks, headers=OCTETS, timeout=60)
    assert response.status_code == 413
    assert read_output(job.annotations) == good


def test_no_redirect_is_followed_with_the_key(tmp_path: Path) -> None:
    """requests keeps an explicit Cookie header across redirects, even to another host: the
    owner's session must not travel to wherever Galaxy's URL redirects."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str | None] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            seen.append(self.headers.get("Cookie"))
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)

    class Redirecting(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(307)
            self.send_header("Location", f"http://localhost:{elsewhere.server_port}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

    galaxy = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    for server in (elsewhere, galaxy):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        labels = tmp_path / "labels.csv"
        labels.write_text("index,mine\ncell0,a\n")
        link = GalaxyLink(f"http://127.0.0.1:{galaxy.server_port}/", "h1")
        with pytest.raises(ExportError, match="redirect"):
            export_files(link.client("secret-session-0123456789"), labels, tmp_path / "none.csv", "demo")
        assert seen == []  # the session never travelled to the redirect's target
    finally:
        for server in (elsewhere, galaxy):
            server.shutdown()
            server.server_close()
