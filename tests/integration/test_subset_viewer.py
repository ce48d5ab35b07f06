"""The viewer's "New dataset from cells": cellxgene's own app (build_session, in process) answers the
page's requests; each subset holds exactly the chosen cells, with the user's labels merged.

"Now" hands the written file to the runtime's one history-upload call (subset_routes.upload_to_history,
over galaxy_export.py); here that call is replaced by a recorder, because this level has no Galaxy.
tests/browser/test_subset_roundtrip.py sends it into a real history.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import anndata as ad
import pytest
from galaxy_cellxgene.app import build_session
from galaxy_cellxgene.labels import read_labels
from galaxy_cellxgene.merge import add_labels_to_obs
from galaxy_cellxgene.prepare import prepare
from galaxy_cellxgene.session_files import Paths
from galaxy_cellxgene.settings import ViewerOptions
from support.anndata_compare import assert_same_anndata
from support.fixtures import DEMO, TEST_DATA, wait_until

pytestmark = pytest.mark.slow

HEADERS = {"X-Galaxy-Cellxgene": "subset"}
LABELS = TEST_DATA / "pbmc_demo_annotations.csv"


def session_for(tmp_path: Path):
    options = ViewerOptions()
    prepared = prepare(DEMO, tmp_path / "work", options)
    paths = Paths(
        DEMO,
        prepared.path,
        tmp_path / "work",
        tmp_path / "a.csv",
        tmp_path / "g.csv",
        previous_annotations=LABELS,  # the user's labels, as a resumed session has them
        subsets_out=tmp_path / "subsets",
    )
    return build_session(paths, options)


def expected(category: str, chosen: list[str]) -> ad.AnnData:
    adata = ad.read_h5ad(DEMO)
    adata.obs = add_labels_to_obs(adata.obs, read_labels(LABELS))
    return adata[adata.obs[category].astype(str).isin(chosen).to_numpy()].copy()


def test_choices_list_user_and_dataset_categories(tmp_path: Path) -> None:
    info = session_for(tmp_path).app.test_client().get("/galaxy/subset").get_json()
    assert info["categories"]["cell_type"][:3] == ["B", "CD4 T", "CD8 T"]
    assert info["categories"]["louvain"] == sorted(str(i) for i in range(11))
    assert "n_genes" not in info["categories"]  # numbers are no labels
    assert info["at_finish"] is True


def test_now_is_written_beside_the_viewer_and_uploaded(tmp_path: Path) -> None:
    session = session_for(tmp_path)
    sent: list[tuple[Path, str]] = []

    def record(path: Path, title: str) -> str:
        kept = tmp_path / f"sent-{len(sent)}.h5ad"
        shutil.copyfile(path, kept)
        sent.append((kept, title))
        return f"#7 {title}"

    session.subsets.upload = record
    client = session.app.test_client()
    answer = client.post(
        "/galaxy/subset", json={"category": "cell_type", "labels": ["CD4 T"], "when": "now"}, headers=HEADERS
    )
    assert answer.status_code == 202, answer.get_json()
    body = answer.get_json()
    assert body["title"] == "cellxgene on pbmc_demo.h5ad: CD4 T (62 cells)"
    wait_until(
        lambda: client.get(f"/galaxy/subset/{body['id']}").get_json()["state"] in ("sent", "error"),
        60,
        "the subset sent",
    )
    state = client.get(f"/galaxy/subset/{body['id']}").get_json()
    assert state["state"] == "sent", state
    assert state["message"] == "#7 cellxgene on pbmc_demo.h5ad: CD4 T (62 cells)"
    [(path, title)] = sent
    assert title == body["title"]
    assert_same_anndata(ad.read_h5ad(path), expected("cell_type", ["CD4 T"]))
    assert not list((tmp_path / "work" / "subsets").glob("*.h5ad"))  # Galaxy has its copy; ours goes


def test_subsets_asked_for_at_finish_land_in_the_outputs(tmp_path: Path) -> None:
    session = session_for(tmp_path)
    client = session.app.test_client()
    for category, labels in (("cell_type", ["NK", "B"]), ("louvain", ["9"])):
        answer = client.post(
            "/galaxy/subset", json={"category": category, "labels": labels, "when": "finish"}, headers=HEADERS
        )
        assert answer.status_code == 202, answer.get_json()
    assert client.get("/galaxy/subset").get_json()["waiting_for_finish"] == [
        "cellxgene on pbmc_demo.h5ad: NK, B (83 cells)",
        "cellxgene on pbmc_demo.h5ad: 9 (9 cells)",
    ]
    assert not (tmp_path / "subsets").exists() or not list((tmp_path / "subsets").iterdir())
    status = session.finish("test")
    assert status["finish_error"] is None
    assert sorted(p.name for p in (tmp_path / "subsets").iterdir()) == ["9.h5ad", "NK_B.h5ad"]
    assert_same_anndata(ad.read_h5ad(tmp_path / "subsets" / "NK_B.h5ad"), expected("cell_type", ["NK", "B"]))
    assert_same_anndata(ad.read_h5ad(tmp_path / "subsets" / "9.h5ad"), expected("louvain", ["9"]))


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        ({"category": "cell_type", "labels": ["NK"], "when": "finish"}, {}, 403, "X-Galaxy-Cellxgene"),
        ({"category": "cell_type", "labels": ["Martians"], "when": "finish"}, HEADERS, 400, "'Martians'"),
        ({"category": "n_genes", "labels": ["1"], "when": "finish"}, HEADERS, 400, "numbers"),
        ({"category": "cell_type", "labels": [], "when": "finish"}, HEADERS, 400, "at least one"),
        # no Galaxy to upload to in this session: "now" is refused, Finish still works
        ({"category": "cell_type", "labels": ["NK"], "when": "now"}, HEADERS, 400, "Finish"),
    ],
)
def test_bad_requests_are_refused_by_name(tmp_path: Path, body: dict, headers: dict, status: int, words: str) -> None:
    client = session_for(tmp_path).app.test_client()
    answer = client.post("/galaxy/subset", json=body, headers=headers)
    assert answer.status_code == status
    assert words in answer.get_json()["message"]
