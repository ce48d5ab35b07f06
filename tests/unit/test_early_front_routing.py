"""early_front.EarlyFront's routing: what it answers itself, what it holds for cellxgene's app,
what it never serves. The answers and the app are stand-ins here (the real ones:
tests/integration/test_early_front.py and test_early_answers.py)."""

from __future__ import annotations

import threading

import pytest
from galaxy_cellxgene import cellxgene_internals as cx
from galaxy_cellxgene.early_front import EarlyFront
from galaxy_cellxgene.settings import FINISH_SCRIPT


class Answers:
    def __init__(self) -> None:
        self.asked: list[tuple[str, dict]] = []
        self.closed = False

    def release_parts(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def answer(self, route: str, query: dict[str, list[str]]):
        self.asked.append((route, query))
        return ("application/json", b'{"schema": 1}') if route == "schema" else None


def call(app, path: str, method: str = "GET", query: str = "") -> tuple[str, bytes]:
    got: dict = {}

    def start_response(status, headers, exc_info=None):
        got["status"] = status

    body = b"".join(app({"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}, start_response))
    return got["status"], body


def cellxgene_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"cellxgene: " + environ["PATH_INFO"].encode()]


@pytest.fixture
def front() -> EarlyFront:
    return EarlyFront(Answers(), (FINISH_SCRIPT, "galaxy/static/subset.js"), hold_s=5)


def test_the_page_and_its_files_are_answered_before_cellxgene(front) -> None:
    status, page = call(front, "/")
    assert status == "200 OK"
    assert b'src="galaxy/static/finish.js"' in page and b'src="galaxy/static/subset.js"' in page
    bundle = next(cx.static_dir().glob("main-*.js")).name
    status, body = call(front, f"/static/{bundle}")
    assert status == "200 OK" and b'"static/assets/' in body and b'"../static/assets/' not in body  # page_fixes
    assert call(front, "/galaxy/static/finish.js")[0] == "200 OK"
    assert call(front, "/obsolete.js")[0] == "200 OK"
    status, body = call(front, "/api/v0.2/schema", query="x=1")
    assert (status, body) == ("200 OK", b'{"schema": 1}')
    assert front.answers.asked == [("schema", {"x": ["1"]})]
    assert front.answered_early == 5


@pytest.mark.parametrize(
    "path",
    ["/api/v0.2/data/var", "/health", "/galaxy/status", "/static/../app.py", "/static/.hidden",
     "/galaxy/static//etc/passwd", "/galaxy/static/../cli.py", "/static/assets/../../../__init__.py"],
)  # fmt: skip
def test_everything_else_waits_for_cellxgene(front, path) -> None:
    got: list = []
    asking = threading.Thread(target=lambda: got.append(call(front, path)))
    asking.start()
    asking.join(0.2)
    assert asking.is_alive() and not got  # held, not answered from a file
    front.hand_over(cellxgene_app)
    asking.join(5)
    assert got == [("200 OK", b"cellxgene: " + path.encode())]


def test_writes_are_never_answered_early(front) -> None:
    front.hand_over(cellxgene_app)
    assert call(front, "/", method="PUT") == ("200 OK", b"cellxgene: /")


def test_after_the_hand_over_cellxgene_answers_everything(front) -> None:
    front.hand_over(cellxgene_app)
    assert front.answers.closed  # the early answers' memory is given back
    assert call(front, "/api/v0.2/schema") == ("200 OK", b"cellxgene: /api/v0.2/schema")
    assert front.answers.asked == []


def test_a_failed_load_answers_the_held_requests_with_its_reason(front) -> None:
    got: list = []
    asking = threading.Thread(target=lambda: got.append(call(front, "/api/v0.2/data/var")))
    asking.start()
    front.fail("cellxgene refused the dataset; the job's log says why.")
    asking.join(5)
    assert got == [("503 Service Unavailable", b"cellxgene refused the dataset; the job's log says why.")]


def test_a_load_that_never_ends_releases_the_held_request() -> None:
    front = EarlyFront(Answers(), (), hold_s=0.05)
    status, body = call(front, "/galaxy/status")
    assert status == "503 Service Unavailable" and b"did not load" in body
