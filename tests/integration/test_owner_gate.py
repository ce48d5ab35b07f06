"""Issue 22 item 9: the viewer answers only the job's owner, whoever else holds its URL.

The real runtime (a subprocess, as Galaxy runs it) asks a STAND-IN for Galaxy's
`GET /api/users/current` who each request's `galaxysession` cookie belongs to: a real HTTP
server on loopback that answers as Galaxy 26.1 does (an email for a signed-in session, no email
for an anonymous one) and counts the questions. A stand-in, because this level has no Galaxy;
tests/galaxy/test_owner_only.py proves the same through a real Galaxy, gx-it-proxy and nginx.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

import pytest
from galaxy_cellxgene.galaxy_client import GalaxyLink
from galaxy_cellxgene.owner_gate import OwnerGate
from galaxy_cellxgene_testkit.stand_in import JsonHandler
from galaxy_cellxgene_testkit.ui_client import UiClient

pytestmark = pytest.mark.slow

OWNER = "owner@example.org"
SESSIONS = {"owner-session": OWNER, "other-session": "other@example.org", "anonymous-session": None}


@dataclass
class UsersStandIn:
    url: str = ""
    asked: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def users_stand_in() -> Iterator[UsersStandIn]:
    state = UsersStandIn()

    class Handler(JsonHandler):
        def do_GET(self) -> None:
            if self.path != "/api/users/current":
                self.answer({"err_msg": "unexpected"}, 400)
                return
            cookie = self.headers.get("Cookie", "")
            session = cookie.removeprefix("galaxysession=")
            with state.lock:
                state.asked.append(session)
            if session == "not-a-galaxy-session":  # what Galaxy 26.1.2 answers a cookie it cannot decode
                self.answer({"err_msg": "Wrong guid specified, unable to decode.", "err_code": 400009}, 400)
                return
            email = SESSIONS.get(session)
            # Galaxy answers an anonymous (or unknown) session with its usage only, no email.
            self.answer({"id": "f2db41e1fa331b3e", "email": email} if email else {"total_disk_usage": 0})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


def owner_env(url: str, **extra: str) -> dict[str, str]:
    return {"GALAXY_CELLXGENE_OWNER": OWNER, "GALAXY_URL": url, **extra}


def test_only_the_owner_gets_the_viewer(runtime, users_stand_in: UsersStandIn) -> None:
    job = runtime(env=owner_env(users_stand_in.url))
    owner = UiClient(job.url, cookie="owner-session")
    other = UiClient(job.url, cookie="other-session")
    anonymous = UiClient(job.url, cookie="anonymous-session")
    nobody = UiClient(job.url, signed_in=False)
    forged = UiClient(job.url, cookie="not-a-galaxy-session")

    assert owner.get("").status_code == 200
    assert owner.schema()["dataframe"]["nObs"] == 320
    for stranger in (other, anonymous, nobody, forged):
        for path in ("", "api/v0.2/schema", "api/v0.2/config", "galaxy/status"):
            response = stranger.get(path)
            assert response.status_code == 403, (path, response.status_code)
            assert "only the" in response.text and "pbmc" not in response.text.lower()
    # The container health probe carries no cookie and says nothing but "pass".
    assert nobody.health()["status"] == "pass"


def test_a_gene_click_is_the_owners_only(runtime, users_stand_in: UsersStandIn, tmp_path) -> None:
    """Sparse X gets a column store, so gene_clicks.py answers clicks: still behind the gate."""
    import anndata as ad
    import scipy.sparse as sp
    from support.fixtures import DEMO

    adata = ad.read_h5ad(DEMO)
    adata.X = sp.csr_matrix(adata.X)
    sparse = tmp_path / "pbmc_sparse.h5ad"
    adata.write_h5ad(sparse)
    job = runtime(sparse, env=owner_env(users_stand_in.url))
    owner = UiClient(job.url, cookie="owner-session")
    assert owner.status()["x_store"]["kind"] in ("memory", "disk")
    assert owner.expression("HES4").shape == (320,)
    click = "api/v0.2/data/var?var:" + owner.schema()["annotations"]["var"]["index"] + "=HES4"
    for stranger in (UiClient(job.url, cookie="other-session"), UiClient(job.url, signed_in=False)):
        response = stranger.get(click, headers={"Accept": "application/octet-stream"})
        assert response.status_code == 403 and "only the" in response.text


def test_a_save_from_another_user_does_not_land(runtime, users_stand_in: UsersStandIn) -> None:
    job = runtime(env=owner_env(users_stand_in.url))
    other = UiClient(job.url, cookie="other-session")
    refused = other.put_labels({"stolen": ["x"] * 320})
    assert refused.status_code == 403
    assert other.finish().status_code == 403
    assert not job.annotations.exists() or "stolen" not in job.annotations.read_text()

    owner = UiClient(job.url, cookie="owner-session")
    assert owner.put_labels({"mine": ["T cell"] * 320}).ok
    assert "mine" in job.annotations.read_text() and "stolen" not in job.annotations.read_text()


def test_galaxy_unreachable_fails_closed(runtime, unused_port: int) -> None:
    job = runtime(env=owner_env(f"http://127.0.0.1:{unused_port}/"))
    response = UiClient(job.url, cookie="owner-session").get("")
    assert response.status_code == 503
    assert "could not ask Galaxy who you are" in response.text


def test_answers_are_cached_briefly_per_session(runtime, users_stand_in: UsersStandIn) -> None:
    job = runtime(env=owner_env(users_stand_in.url))
    owner = UiClient(job.url, cookie="owner-session")
    for _ in range(5):
        assert owner.get("api/v0.2/config").status_code == 200
    assert users_stand_in.asked.count("owner-session") == 1


def test_the_admin_switch_turns_the_check_off(runtime, users_stand_in: UsersStandIn) -> None:
    job = runtime(env=owner_env(users_stand_in.url, GALAXY_CELLXGENE_OWNER_CHECK="off"))
    assert UiClient(job.url, signed_in=False).get("").status_code == 200
    assert users_stand_in.asked == []


def test_the_cache_is_bounded_and_expires() -> None:
    asked: list[str] = []
    now = [0.0]

    def resolve(cookie: str) -> str | None:
        asked.append(cookie)
        return OWNER if cookie == "owner" else None

    gate = OwnerGate(lambda e, s: [b""], OWNER, GalaxyLink("http://g/", None), resolve, lambda: now[0], 60, 8)
    assert gate.is_owner("owner") and not gate.is_owner("stranger")
    for i in range(100):
        gate.is_owner(f"s{i}")
    assert gate.cached() == 8
    now[0] = 61.0
    asked.clear()
    assert gate.is_owner("owner") and asked == ["owner"]
    assert gate.is_owner("owner") and asked == ["owner"]


def test_the_owner_session_is_kept_for_later_calls_and_no_other(users_stand_in: UsersStandIn) -> None:
    """Export and the remote saver act with the owner's own session (galaxy_client.py)."""
    link = GalaxyLink(users_stand_in.url, "h")

    def app(environ: dict, start_response) -> list[bytes]:
        start_response("200 OK", [])
        return [b""]

    gate = OwnerGate(app, OWNER, link)

    def call(cookie: str) -> str:
        status: list[str] = []
        gate({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_COOKIE": cookie}, lambda st, h: status.append(st))
        return status[0]

    assert call("galaxysession=other-session").startswith("403")
    assert link.cookie() is None
    assert call("theme=dark; galaxysession=owner-session").startswith("200")
    assert link.cookie() == "owner-session"
