"""`galaxy/export`: the runtime side of "Export to Galaxy", against the real local Galaxy.

The routes are registered on a bare Flask app exactly as app.py registers them on
cellxgene's; the browser part is covered by test_visualize_roundtrip.py. No API key: the
upload authenticates with the Galaxy session cookie the request carries (the owner's, as the
owner gate proved), so these tests also measure that Galaxy 26.1.2 takes a session cookie for
/api/tools/fetch and /api/jobs/{id}.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import flask
import pytest
from galaxy_cellxgene import galaxy_export
from galaxy_cellxgene.galaxy_client import GalaxyLink

ROOT = Path(__file__).resolve().parents[2]
LABELS = ROOT / "test-data" / "pbmc_demo_annotations.csv"
GENE_SETS = ROOT / "test-data" / "pbmc_demo_gene_sets.csv"
HISTORY = "f2db41e1fa331b3e"
HEADERS = {galaxy_export.CSRF_HEADER: "export"}


def signed_in(client: Any, cookie: str) -> Any:
    """The client becomes the owner's browser: it sends Galaxy's session cookie."""
    client.set_cookie("galaxysession", cookie)
    return client


def make_client(
    tmp_path: Path,
    link: GalaxyLink,
    labels: Path | None = LABELS,
    gene_sets: Path | None = GENE_SETS,
) -> Any:
    annotations = tmp_path / "annotations.csv"
    genes = tmp_path / "gene_sets.csv"
    if labels is not None:
        annotations.write_bytes(labels.read_bytes())
    if gene_sets is not None:
        genes.write_bytes(gene_sets.read_bytes())
    app = flask.Flask("export-test")
    galaxy_export.register(app, link, annotations, genes, "pbmc_demo.h5ad")
    return app.test_client()


def test_without_galaxy_environment_the_route_answers_501(tmp_path: Path) -> None:
    link = GalaxyLink.from_env({galaxy_export.ENV_URL: "http://127.0.0.1:9/"})
    client = make_client(tmp_path, link)
    assert not link.can_write
    for response in (client.get("/galaxy/export"), client.post("/galaxy/export", headers=HEADERS)):
        assert response.status_code == 501
        body = response.get_json()
        assert body["enabled"] is False
        assert "GALAXY_HISTORY_ID" in body["message"]
        assert "GALAXY_URL" not in body["message"]  # it is set; only what is missing is named
        assert "KEY" not in body["message"]  # no key is needed any more


def test_a_post_without_the_page_header_is_refused(tmp_path: Path) -> None:
    client = make_client(tmp_path, GalaxyLink("http://127.0.0.1:9/", HISTORY))
    response = signed_in(client, "abc").post("/galaxy/export")  # what a cross-site form can send
    assert response.status_code == 403


def test_nothing_saved_yet_is_a_clear_409(tmp_path: Path) -> None:
    client = make_client(tmp_path, GalaxyLink("http://127.0.0.1:9/", HISTORY), labels=None, gene_sets=None)
    assert client.get("/galaxy/export").get_json() == {"enabled": True}
    response = signed_in(client, "abc").post("/galaxy/export", headers=HEADERS)
    assert response.status_code == 409
    assert "Nothing to export yet" in response.get_json()["message"]


def test_without_a_galaxy_session_the_export_says_sign_in(tmp_path: Path) -> None:
    response = make_client(tmp_path, GalaxyLink("http://127.0.0.1:9/", HISTORY)).post("/galaxy/export", headers=HEADERS)
    assert response.status_code == 401
    assert "signed in to Galaxy" in response.get_json()["message"]


def test_unreachable_galaxy_is_reported_without_the_session(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cookie = "secret-session-" + "x" * 24
    caplog.set_level(logging.DEBUG)
    client = make_client(tmp_path, GalaxyLink("http://127.0.0.1:9/", HISTORY))  # discard port: refused
    response = signed_in(client, cookie).post("/galaxy/export", headers=HEADERS)
    assert response.status_code == 502
    assert "not reachable" in response.get_json()["message"]
    assert cookie not in response.get_data(as_text=True)
    assert cookie not in caplog.text


@pytest.mark.galaxy
def test_export_uploads_both_files_with_the_session_and_never_shows_it(
    galaxy: Any, galaxy_history: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    link = GalaxyLink(galaxy.url + "/", galaxy_history)
    cookie = galaxy.session_cookie
    client = signed_in(make_client(tmp_path, link), cookie)

    response = client.post("/galaxy/export", headers=HEADERS)
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["ok"] and body["history_id"] == galaxy_history
    names = [d["name"] for d in body["datasets"]]
    assert len(names) == 2
    assert names[0].startswith("pbmc_demo.h5ad: cellxgene annotations (exported ")
    assert names[1].startswith("pbmc_demo.h5ad: cellxgene gene sets (exported ")

    # The page polls the upload through the runtime until Galaxy has stored it.
    deadline = time.monotonic() + 300
    states: dict[str, str] = {}
    while not states or any(state != "ok" for state in states.values()):
        assert time.monotonic() < deadline, f"uploads not done in time: {states}"
        for job_id in body["jobs"]:
            answer = client.get(f"/galaxy/export/jobs/{job_id}")
            assert answer.status_code == 200
            assert answer.get_json()["ok"], answer.get_json()
            states[job_id] = answer.get_json()["state"]
            assert cookie not in answer.get_data(as_text=True)
        time.sleep(1)

    for dataset, source in zip(body["datasets"], (LABELS, GENE_SETS), strict=True):
        stored = galaxy.wait_for_dataset(dataset["id"])
        assert stored["extension"] == "csv"
        assert galaxy.dataset_bytes(dataset["id"]) == source.read_bytes()  # byte for byte, CRLF kept

    # Only this session's uploads can be asked about; the session stays on the server side.
    assert client.get(f"/galaxy/export/jobs/{HISTORY}").status_code == 404
    assert cookie not in response.get_data(as_text=True)
    assert cookie not in caplog.text
    assert cookie not in repr(link.client(cookie))


@pytest.mark.galaxy
def test_another_users_session_cannot_write_the_owners_history(
    galaxy: Any, galaxy_history: str, tmp_path: Path
) -> None:
    """With the owner check off (the admin switch) Export acts as whoever's browser asked:
    Galaxy itself refuses an upload into a history that user does not own."""
    other = (
        galaxy.admin.post(
            "users", {"email": "export-other@example.org", "password": "export-other-pw", "username": "exportother"}
        )
        if galaxy.admin.find_user("export-other@example.org") is None
        else None
    )
    del other
    stranger = galaxy.sign_in("export-other@example.org", "export-other-pw")
    galaxy.sign_in(galaxy.credentials["user_email"], galaxy.credentials["user_password"])  # the owner again
    client = signed_in(make_client(tmp_path, GalaxyLink(galaxy.url + "/", galaxy_history)), stranger)
    response = client.post("/galaxy/export", headers=HEADERS)
    assert response.status_code == 502
    message = response.get_json()["message"]
    assert "Galaxy" in message and ("refused" in message or "HTTP 4" in message), message
    assert stranger not in response.get_data(as_text=True)
