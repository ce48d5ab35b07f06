"""`galaxy/export`: the runtime side of "Export to Galaxy", against the real local Galaxy.

The routes are registered on a bare Flask app exactly as app.py registers them on
cellxgene's; the browser part is covered by test_visualize_roundtrip.py.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import flask
import pytest
from galaxy_cellxgene import galaxy_export

ROOT = Path(__file__).resolve().parents[2]
LABELS = ROOT / "test-data" / "pbmc_demo_annotations.csv"
GENE_SETS = ROOT / "test-data" / "pbmc_demo_gene_sets.csv"
ENV = (galaxy_export.ENV_URL, galaxy_export.ENV_KEY, galaxy_export.ENV_HISTORY)


HEADERS = {galaxy_export.CSRF_HEADER: "export"}


def make_client(tmp_path: Path, labels: Path | None = LABELS, gene_sets: Path | None = GENE_SETS) -> Any:
    annotations = tmp_path / "annotations.csv"
    genes = tmp_path / "gene_sets.csv"
    if labels is not None:
        annotations.write_bytes(labels.read_bytes())
    if gene_sets is not None:
        genes.write_bytes(gene_sets.read_bytes())
    app = flask.Flask("export-test")
    galaxy_export.register(app, annotations, genes, "pbmc_demo.h5ad")
    return app.test_client()


def test_without_galaxy_environment_the_route_answers_501(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(galaxy_export.ENV_URL, "http://127.0.0.1:9/")
    client = make_client(tmp_path)
    assert not galaxy_export.available()
    for response in (client.get("/galaxy/export"), client.post("/galaxy/export", headers=HEADERS)):
        assert response.status_code == 501
        body = response.get_json()
        assert body["enabled"] is False
        assert "GALAXY_API_KEY" in body["message"] and "GALAXY_HISTORY_ID" in body["message"]
        assert "GALAXY_URL" not in body["message"]  # it is set; only what is missing is named


def test_a_post_without_the_page_header_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(galaxy_export.ENV_URL, "http://127.0.0.1:9/")
    monkeypatch.setenv(galaxy_export.ENV_KEY, "k" * 32)
    monkeypatch.setenv(galaxy_export.ENV_HISTORY, "f2db41e1fa331b3e")
    response = make_client(tmp_path).post("/galaxy/export")  # what a cross-site form can send
    assert response.status_code == 403


def test_nothing_saved_yet_is_a_clear_409(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(galaxy_export.ENV_URL, "http://127.0.0.1:9/")
    monkeypatch.setenv(galaxy_export.ENV_KEY, "k" * 32)
    monkeypatch.setenv(galaxy_export.ENV_HISTORY, "f2db41e1fa331b3e")
    client = make_client(tmp_path, labels=None, gene_sets=None)
    assert client.get("/galaxy/export").get_json() == {"enabled": True}
    response = client.post("/galaxy/export", headers=HEADERS)
    assert response.status_code == 409
    assert "Nothing to export yet" in response.get_json()["message"]


def test_unreachable_galaxy_is_reported_without_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = "secret-key-" + "x" * 24
    monkeypatch.setenv(galaxy_export.ENV_URL, "http://127.0.0.1:9/")  # discard port: refused
    monkeypatch.setenv(galaxy_export.ENV_KEY, key)
    monkeypatch.setenv(galaxy_export.ENV_HISTORY, "f2db41e1fa331b3e")
    caplog.set_level(logging.DEBUG)
    response = make_client(tmp_path).post("/galaxy/export", headers=HEADERS)
    assert response.status_code == 502
    assert "not reachable" in response.get_json()["message"]
    assert key not in response.get_data(as_text=True)
    assert key not in caplog.text


@pytest.mark.galaxy
def test_export_uploads_both_files_and_never_shows_the_key(
    galaxy: Any, galaxy_history: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(galaxy_export.ENV_URL, galaxy.url)
    monkeypatch.setenv(galaxy_export.ENV_KEY, galaxy.user_key)
    monkeypatch.setenv(galaxy_export.ENV_HISTORY, galaxy_history)
    caplog.set_level(logging.DEBUG)
    client = make_client(tmp_path)

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
            assert galaxy.user_key not in answer.get_data(as_text=True)
        time.sleep(1)

    for dataset, source in zip(body["datasets"], (LABELS, GENE_SETS), strict=True):
        stored = galaxy.wait_for_dataset(dataset["id"])
        assert stored["extension"] == "csv"
        assert galaxy.dataset_bytes(dataset["id"]) == source.read_bytes()  # byte for byte, CRLF kept

    # Only this session's uploads can be asked about; the key stays on the server side.
    assert client.get("/galaxy/export/jobs/f2db41e1fa331b3e").status_code == 404
    assert galaxy.user_key not in response.get_data(as_text=True)
    assert galaxy.user_key not in caplog.text
    assert galaxy.user_key not in repr(galaxy_export.target_from_env())


@pytest.mark.galaxy
def test_a_refused_key_is_reported_not_echoed(
    galaxy: Any, galaxy_history: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "0123456789abcdef" * 2
    monkeypatch.setenv(galaxy_export.ENV_URL, galaxy.url)
    monkeypatch.setenv(galaxy_export.ENV_KEY, wrong)
    monkeypatch.setenv(galaxy_export.ENV_HISTORY, galaxy_history)
    response = make_client(tmp_path).post("/galaxy/export", headers=HEADERS)
    assert response.status_code == 502
    message = response.get_json()["message"]
    assert "Galaxy" in message and ("refused" in message or "HTTP 4" in message), message
    assert wrong not in response.get_data(as_text=True)
