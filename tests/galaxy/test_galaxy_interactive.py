"""Issue 3, tests 2-5: the interactive tool end to end in a real Galaxy, without a container.

The viewer is launched through Galaxy's API, reached through the one front URL (nginx ->
gx-it-proxy -> cellxgene on the port the runtime registered in container_runtime.json), and
driven over HTTP the way cellxgene's web client drives it (galaxy_cellxgene_testkit.ui_client).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd
import pytest
from galaxy_cellxgene_testkit.entry_points import open_viewer as open_entry_point
from galaxy_cellxgene_testkit.ui_client import UiClient
from support.galaxy_fixture import MERGE_TOOL, TEST_DATA, VIEWER_TOOL, LocalGalaxy, poll, read_labels_csv

pytestmark = [pytest.mark.galaxy, pytest.mark.slow, pytest.mark.timeout(1800)]

CATEGORY = "galaxy_e2e_cell_type"  # not an obs column of pbmc_demo.h5ad (that would be refused)
GENE_SET = "galaxy e2e markers"
# Generous: a loaded 2-core machine takes minutes per Galaxy job; a quiet one seconds.
ENTRY_POINT_TIMEOUT = 300
JOB_TIMEOUT = 600


def demo_labels(n_obs: int) -> list[str]:
    # Three labels with spaces, in a pattern a shifted or truncated column would not reproduce.
    names = ["T cell", "B cell", "NK cell"]
    return [names[(i * 7 + i // 11) % 3] for i in range(n_obs)]


def demo_gene_set() -> dict[str, Any]:
    genes = list(ad.read_h5ad(TEST_DATA / "pbmc_demo.h5ad", backed="r").var_names[:3])
    return {
        "geneset_name": GENE_SET,
        "geneset_description": "saved by the Galaxy end-to-end test",
        "genes": [{"gene_symbol": gene, "gene_description": ""} for gene in genes],
    }


def launch_viewer(
    galaxy: LocalGalaxy, history_id: str, dataset_id: str, **extra: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    inputs: dict[str, Any] = {
        "input": {"src": "hda", "id": dataset_id},
        "mode|mode_select": "view",
        # 0 = no idle timeout: the tests decide when the session ends.
        "mode|idle_timeout": 0,
        **extra,
    }
    run = galaxy.run_tool(VIEWER_TOOL, history_id, inputs)
    return run["jobs"][0], galaxy.output_ids(run)


def open_viewer(galaxy: LocalGalaxy, job_id: str) -> tuple[dict[str, Any], UiClient]:
    entry_point, ui = open_entry_point(galaxy, job_id, timeout=ENTRY_POINT_TIMEOUT)
    # Through the front URL: the same origin as Galaxy, under its entry point path.
    assert ui.base_url.startswith(galaxy.url + "/interactivetool/ep/"), ui.base_url
    return entry_point, ui


def assert_labels(frame: pd.DataFrame, expected: list[str]) -> None:
    assert CATEGORY in frame.columns, list(frame.columns)
    assert [str(v) for v in frame[CATEGORY]] == expected


def wait_until_saved(ui: UiClient, label_saves: int = 1, gene_set_saves: int = 0) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = ui.status()
        ok = status["label_saves"] >= label_saves and status["gene_set_saves"] >= gene_set_saves
        return status if ok else None

    return poll("the runtime to report the saves", probe, 30)


@pytest.fixture(scope="module")
def finished_session(
    galaxy: LocalGalaxy, galaxy_history: str, galaxy_demo: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Launch, save labels and a gene set as the UI does, then finish from inside the viewer."""
    job, outputs = launch_viewer(galaxy, galaxy_history, galaxy_demo["id"])
    _, ui = open_viewer(galaxy, job["id"])

    page = ui.page()
    assert "<html" in page.lower()
    config = ui.config()
    n_obs = ui.schema()["dataframe"]["nObs"]
    labels = demo_labels(n_obs)
    gene_set = demo_gene_set()

    assert ui.put_labels({CATEGORY: labels}).status_code == 200
    assert ui.put_gene_sets([gene_set]).status_code == 200
    wait_until_saved(ui, label_saves=1, gene_set_saves=1)
    # What the UI reads back after its save, through the proxy.
    assert_labels(ui.get_labels(), labels)

    response = ui.finish()
    assert response.status_code == 200, response.text
    finished = galaxy.wait_for_job(job["id"], timeout=JOB_TIMEOUT)
    return {
        "job": finished,
        "outputs": outputs,
        "labels": labels,
        "gene_set": gene_set,
        "config": config,
        "tmp": tmp_path_factory.mktemp("finish"),
    }


def test_finish_path(galaxy: LocalGalaxy, finished_session: dict[str, Any]) -> None:
    job, outputs, labels = finished_session["job"], finished_session["outputs"], finished_session["labels"]
    assert job["state"] == "ok", galaxy.job_stderr(job["id"])
    assert finished_session["config"]["displayNames"]["dataset"]

    annotations = galaxy.wait_for_dataset(outputs["annotations"])
    assert annotations["extension"] == "csv"
    assert_labels(read_labels_csv(galaxy.dataset_text(outputs["annotations"])), labels)

    gene_sets = galaxy.dataset_text(galaxy.wait_for_dataset(outputs["gene_sets"])["id"])
    assert GENE_SET in gene_sets
    for gene in finished_session["gene_set"]["genes"]:
        assert gene["gene_symbol"] in gene_sets

    collection = galaxy.collection(outputs["annotated"])
    assert collection["populated_state"] == "ok", collection
    elements = collection["elements"]
    assert len(elements) == 1, elements
    merged_id = elements[0]["object"]["id"]
    merged_meta = galaxy.wait_for_dataset(merged_id)
    assert merged_meta["extension"] == "h5ad"
    merged = ad.read_h5ad(galaxy.download(merged_id, finished_session["tmp"] / "merged.h5ad"))
    assert isinstance(merged.obs[CATEGORY].dtype, pd.CategoricalDtype)
    assert [str(v) for v in merged.obs[CATEGORY]] == labels
    original = ad.read_h5ad(TEST_DATA / "pbmc_demo.h5ad", backed="r")
    assert merged.shape == original.shape
    assert list(merged.obs_names) == list(original.obs_names)


def test_stop_path(galaxy: LocalGalaxy, galaxy_history: str, galaxy_demo: dict[str, Any], tmp_path: Path) -> None:
    job, outputs = launch_viewer(galaxy, galaxy_history, galaxy_demo["id"])
    entry_point, ui = open_viewer(galaxy, job["id"])
    labels = list(reversed(demo_labels(ui.schema()["dataframe"]["nObs"])))
    assert ui.put_labels({CATEGORY: labels}).status_code == 200
    wait_until_saved(ui, label_saves=1)

    # The Stop button of Galaxy's interface.
    galaxy.stop_entry_point(entry_point["id"])

    # Galaxy marks the job stopped and then finishes it: wait for it to settle on ok.
    def settled() -> dict[str, Any] | None:
        state = galaxy.job(job["id"], full=False)["state"]
        return galaxy.job(job["id"]) if state in {"ok", "error", "failed", "deleted"} else None

    stopped = poll(f"job {job['id']} to end after Stop", settled, JOB_TIMEOUT)
    assert stopped["state"] == "ok", (stopped["state"], galaxy.job_stderr(job["id"]))

    annotations = galaxy.wait_for_dataset(outputs["annotations"])
    assert annotations["state"] == "ok"
    assert_labels(read_labels_csv(galaxy.dataset_text(outputs["annotations"])), labels)

    # No merged h5ad after a Stop: the list stays empty rather than holding a broken file.
    collection = galaxy.collection(outputs["annotated"])
    for element in collection["elements"]:
        dataset = galaxy.dataset(element["object"]["id"])
        assert dataset["state"] == "ok" and dataset["file_size"] > 0, dataset
        ad.read_h5ad(galaxy.download(dataset["id"], tmp_path / "unexpected.h5ad"))
    assert collection["elements"] == [], "a Stop must not produce a merged h5ad"
    # Nor a stray h5ad dataset anywhere in the history from this job.
    produced = {o for o in outputs.values()}
    for item in galaxy.history_contents(galaxy_history):
        if item.get("extension") == "h5ad" and item["id"] not in produced:
            details = galaxy.dataset(item["id"])
            assert details.get("creating_job") != job["id"], details


def test_resume_path(
    galaxy: LocalGalaxy, galaxy_history: str, galaxy_demo: dict[str, Any], finished_session: dict[str, Any]
) -> None:
    previous = finished_session["outputs"]["annotations"]
    job, _ = launch_viewer(
        galaxy,
        galaxy_history,
        galaxy_demo["id"],
        **{"resume|previous_annotations": {"src": "hda", "id": previous}},
    )
    entry_point, ui = open_viewer(galaxy, job["id"])
    try:
        assert CATEGORY in ui.user_categories()
        assert_labels(ui.get_labels(), finished_session["labels"])
    finally:
        galaxy.stop_entry_point(entry_point["id"])
        galaxy.wait_for_job(job["id"], timeout=JOB_TIMEOUT)


def test_failure_path(galaxy: LocalGalaxy, galaxy_history: str) -> None:
    broken = galaxy.upload_test_data(galaxy_history, "broken_no_embedding.h5ad", ext="h5ad")
    started = time.monotonic()
    job, _ = launch_viewer(galaxy, galaxy_history, broken["id"])
    finished = galaxy.wait_for_job(job["id"], timeout=JOB_TIMEOUT)
    elapsed = time.monotonic() - started
    assert finished["state"] == "error", finished["state"]
    # From the click to the red dataset, Galaxy's own job set-up and metadata step included
    # (about 15 s on a quiet 2-core machine; most of it is Galaxy, not the runtime).
    assert elapsed < 60, f"the job took {elapsed:.0f} s to fail"
    stderr = galaxy.job_stderr(job["id"])
    # The runtime's own message (what is wrong, then how to fix it), not a traceback.
    assert "embedding" in stderr.lower(), stderr
    assert "Traceback" not in stderr, stderr
    # No entry point was ever activated for a dataset that cannot be shown.
    assert not [ep for ep in galaxy.entry_points(job["id"]) if ep.get("active")]


def test_merge_tool_rescues_annotations_after_a_stop(
    galaxy: LocalGalaxy, galaxy_history: str, galaxy_demo: dict[str, Any], finished_session: dict[str, Any]
) -> None:
    """The companion tool turns a session's annotations into the annotated h5ad."""
    run = galaxy.run_tool(
        MERGE_TOOL,
        galaxy_history,
        {
            "input": {"src": "hda", "id": galaxy_demo["id"]},
            "annotations": {"src": "hda", "id": finished_session["outputs"]["annotations"]},
        },
    )
    job = galaxy.wait_for_job(run["jobs"][0]["id"], timeout=JOB_TIMEOUT)
    assert job["state"] == "ok", galaxy.job_stderr(job["id"])
    output = galaxy.output_ids(run)["output"]
    merged = ad.read_h5ad(galaxy.download(output, finished_session["tmp"] / "rescued.h5ad"))
    assert [str(v) for v in merged.obs[CATEGORY]] == finished_session["labels"]
