"""Issue 15: the interactive tool on a remote Pulsar node, through a real Galaxy.

A third local Galaxy (fixture `galaxy_pulsar`, `GALAXY_CELLXGENE_DESTINATION=pulsar`) sends every
cellxgene tool to a Pulsar REST server (pulsar-app 0.16.0, scripts/pulsar.sh) with its own
staging directory: Galaxy uploads the input and the tool's runtime into it and downloads the
outputs when the job ends. Pulsar runs the job script Galaxy built, which runs the image with
podman; Galaxy's container monitor POSTs the published port to Galaxy's API (callback), which
configures the entry point. Nothing here starts a container, writes a port file or moves a file
on the tool's behalf.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

import anndata as ad
import pandas as pd
import pytest
from galaxy_cellxgene_testkit.containers import wait_container_gone
from galaxy_cellxgene_testkit.entry_points import open_viewer, start_viewer
from galaxy_cellxgene_testkit.ui_client import UiClient
from support.galaxy_fixture import TEST_DATA, LocalGalaxy, poll, read_labels_csv
from support.pulsar_fixture import PULSAR_STAGING

pytestmark = [pytest.mark.galaxy, pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(1800)]

CATEGORY = "galaxy_pulsar_cell_type"  # not an obs column of pbmc_demo.h5ad
ENTRY_POINT_TIMEOUT = 300
JOB_TIMEOUT = 600
PUSHED = re.compile(r"^cellxgene on pbmc_demo\.h5ad: cell annotations \(saved at \d\d:\d\d\)$")
LABEL = f"org.galaxy-cellxgene.pulsar-staging={PULSAR_STAGING}"


def labels_for(n_obs: int, shift: int = 0) -> list[str]:
    names = ["T cell", "B cell", "NK cell"]
    return [names[(i * 3 + i // 17 + shift) % 3] for i in range(n_obs)]


def open_entry_point(galaxy: LocalGalaxy, job_id: str) -> tuple[dict[str, Any], UiClient]:
    entry_point, ui = open_viewer(galaxy, job_id, timeout=ENTRY_POINT_TIMEOUT)
    assert ui.base_url.startswith(galaxy.url + "/interactivetool/ep/"), ui.base_url  # through gx-it-proxy
    return entry_point, ui


def containers() -> dict[str, dict[str, Any]]:
    """The job containers Galaxy started for this Pulsar, by name, with their mounts."""
    names = subprocess.run(
        ["podman", "ps", "--filter", f"label={LABEL}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    found = {}
    for name in names:
        inspected = subprocess.run(["podman", "inspect", name], capture_output=True, text=True, timeout=60)
        if inspected.returncode == 0:
            found[name] = json.loads(inspected.stdout)[0]
    return found


def container_of(job_id_decoded: int) -> tuple[str, dict[str, Any]]:
    job_dir = str(PULSAR_STAGING / str(job_id_decoded))

    def probe() -> tuple[str, dict[str, Any]] | None:
        for name, info in containers().items():
            if any(mount["Source"] == job_dir for mount in info["Mounts"]):
                return name, info
        return None

    return poll(f"the container of Pulsar job {job_id_decoded}", probe, 60)


def visible_datasets(galaxy: LocalGalaxy, history_id: str) -> list[dict[str, Any]]:
    return [item for item in galaxy.history_contents(history_id) if not item.get("deleted") and item.get("visible")]


def pushed_copies(galaxy: LocalGalaxy, history_id: str) -> list[dict[str, Any]]:
    return [item for item in visible_datasets(galaxy, history_id) if PUSHED.match(item.get("name") or "")]


@pytest.fixture(scope="module")
def history(galaxy_pulsar: LocalGalaxy) -> str:
    return galaxy_pulsar.new_history(f"pytest pulsar {time.strftime('%H:%M:%S')}")


@pytest.fixture(scope="module")
def inputs(galaxy_pulsar: LocalGalaxy, history: str) -> dict[str, dict[str, Any]]:
    """Both inputs of the module, uploaded at once (each upload is a Galaxy job of its own)."""
    names = ("pbmc_demo.h5ad", "broken_no_embedding.h5ad")
    sent = {name: galaxy_pulsar.upload(history, TEST_DATA / name, name=name, ext="h5ad") for name in names}
    return {name: galaxy_pulsar.wait_for_dataset(output["id"]) for name, output in sent.items()}


@pytest.fixture(scope="module")
def demo(inputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return inputs["pbmc_demo.h5ad"]


@pytest.fixture(scope="module")
def running(galaxy_pulsar: LocalGalaxy, history: str, demo: dict[str, Any]) -> dict[str, Any]:
    """One viewer on the Pulsar destination, open through the proxy (finished by test_finish)."""
    submitted = time.monotonic()
    job, outputs = start_viewer(galaxy_pulsar, history, demo["id"])
    entry_point, ui = open_entry_point(galaxy_pulsar, job["id"])
    active_after = time.monotonic() - submitted
    print(f"pulsar destination: submit -> active entry point answering in {active_after:.1f} s")
    return {"job": job, "outputs": outputs, "entry_point": entry_point, "ui": ui, "active_after": active_after}


def decoded(galaxy: LocalGalaxy, encoded: str) -> int:
    return int(galaxy.admin.get(f"configuration/decode/{encoded}")["decoded_id"])


def test_viewer_runs_on_pulsar_in_the_image(
    galaxy_pulsar: LocalGalaxy, running: dict[str, Any], record_property: Any
) -> None:
    record_property("pulsar_submit_to_active_s", round(running["active_after"], 1))
    galaxy = galaxy_pulsar
    assert running["ui"].health()["status"] == "pass"
    job = galaxy.admin.get(f"jobs/{running['job']['id']}", params={"full": "true"})
    assert job.get("external_id"), job  # Pulsar's id for it: the job went through the pulsar runner
    _, info = container_of(decoded(galaxy, running["job"]["id"]))
    assert info["ImageName"].endswith("cellxgene-galaxy:1.3.0--galaxy0"), info["ImageName"]
    # No shared file system: everything the container sees of the job is Pulsar's staging copy
    # (the tool's runtime included), never Galaxy's job or dataset directories.
    staged = str(PULSAR_STAGING)
    sources = [mount["Source"] for mount in info["Mounts"]]
    assert all(s.startswith(staged) or s.endswith("/tool-data") for s in sources), sources
    assert any(s.endswith("/tool_files") for s in sources), sources
    env = dict(item.split("=", 1) for item in info["Config"]["Env"])
    assert env["GALAXY_CELLXGENE_OUTPUTS"] == "staged"


def test_stop_keeps_the_labels_in_the_history(galaxy_pulsar: LocalGalaxy, history: str, demo: dict[str, Any]) -> None:
    galaxy = galaxy_pulsar
    job, outputs = start_viewer(galaxy, history, demo["id"])
    entry_point, ui = open_entry_point(galaxy, job["id"])
    name, _ = container_of(decoded(galaxy, job["id"]))
    labels = labels_for(ui.schema()["dataframe"]["nObs"], shift=1)
    assert ui.put_labels({CATEGORY: labels}).status_code == 200
    saved_at = time.monotonic()

    # 1. While the job runs, the runtime pushes the save into the history (remote_save.py):
    # the output itself is only Pulsar's staging copy until the job ends.
    pushed = poll("the pushed save", lambda: pushed_copies(galaxy, history) or None, 120)
    assert len(pushed) == 1, pushed
    copy = galaxy.wait_for_dataset(pushed[0]["id"])
    print(f"pulsar destination: save -> pushed copy ok in the history in {time.monotonic() - saved_at:.1f} s")
    assert [str(v) for v in read_labels_csv(galaxy.dataset_text(copy["id"]))[CATEGORY]] == labels

    galaxy.stop_entry_point(entry_point["id"])  # the Stop button
    stop_at = time.monotonic()
    stopped = galaxy.settle_after_stop(job["id"], JOB_TIMEOUT)
    print(f"pulsar destination: Stop -> job {stopped['state']} in {time.monotonic() - stop_at:.1f} s")
    assert stopped["state"] == "ok", (stopped["state"], galaxy.job_stderr(job["id"]))
    # 2. REST Pulsar also stages the output of a cancelled job back (measured): the last save
    # arrives in the annotations output too. (MQ Pulsar skips that; then copy 1 is the only one.)
    annotations = galaxy.wait_for_dataset(outputs["annotations"])
    assert [str(v) for v in read_labels_csv(galaxy.dataset_text(annotations["id"]))[CATEGORY]] == labels
    assert galaxy.collection(outputs["annotated"])["elements"] == [], "a Stop must not produce a merged h5ad"

    # Pulsar SIGKILLs the job shell, so its `podman kill` never runs; the runtime ends itself
    # once Pulsar has deleted the job's staging directory.
    wait_container_gone(name, 180)
    # Not asserted here: that the orphan then deletes its pushed copy (collected.py). On this one
    # machine the container reaches the loopback Galaxy through slirp4netns, a child of the job
    # shell that Stop SIGKILLs, so the orphan has no network left and the copy stays (measured:
    # "Galaxy is not reachable" in the container's log). On a node with a bridge network the
    # network outlives the shell; tests/integration/test_remote_save.py proves the logic.
    print(f"pulsar destination: Stop -> container gone in {time.monotonic() - stop_at:.1f} s")


def test_finish_stages_back_every_output(
    galaxy_pulsar: LocalGalaxy, history: str, running: dict[str, Any], tmp_path: Any
) -> None:
    galaxy, ui, outputs = galaxy_pulsar, running["ui"], running["outputs"]
    before = {item["id"] for item in pushed_copies(galaxy, history)}
    labels = labels_for(ui.schema()["dataframe"]["nObs"])
    assert ui.put_labels({CATEGORY: labels}).status_code == 200
    genes = list(ad.read_h5ad(TEST_DATA / "pbmc_demo.h5ad", backed="r").var_names[:2])
    gene_set = {"geneset_name": "pulsar markers", "geneset_description": "", "genes": []}
    gene_set["genes"] = [{"gene_symbol": g, "gene_description": ""} for g in genes]
    assert ui.put_gene_sets([gene_set]).status_code == 200
    pushed = poll(
        "the pushed save", lambda: [p for p in pushed_copies(galaxy, history) if p["id"] not in before] or None, 120
    )

    galaxy.finish_viewer(ui, running["job"]["id"], JOB_TIMEOUT)

    annotations = galaxy.labels(outputs["annotations"])
    assert [str(v) for v in annotations[CATEGORY]] == labels
    assert "pulsar markers" in galaxy.dataset_text(galaxy.wait_for_dataset(outputs["gene_sets"])["id"])
    elements = galaxy.collection(outputs["annotated"])["elements"]
    assert len(elements) == 1, elements
    merged = ad.read_h5ad(galaxy.download(elements[0]["object"]["id"], tmp_path / "merged.h5ad"))
    assert isinstance(merged.obs[CATEGORY].dtype, pd.CategoricalDtype)
    assert [str(v) for v in merged.obs[CATEGORY]] == labels
    # The outputs arrived by staging: the session's pushed copies were withdrawn (deleted).
    still_visible = {item["id"] for item in pushed_copies(galaxy, history)}
    assert not still_visible & {p["id"] for p in pushed}, pushed


def test_failing_input_fails_fast_with_the_runtime_message(
    galaxy_pulsar: LocalGalaxy, history: str, inputs: dict[str, dict[str, Any]]
) -> None:
    galaxy = galaxy_pulsar
    broken = inputs["broken_no_embedding.h5ad"]
    started = time.monotonic()
    job, _ = start_viewer(galaxy, history, broken["id"])
    finished = galaxy.wait_for_job(job["id"], timeout=JOB_TIMEOUT)
    print(f"pulsar destination: failing input -> job {finished['state']} in {time.monotonic() - started:.1f} s")
    assert finished["state"] == "error", finished["state"]
    stderr = galaxy.job_stderr(job["id"])
    assert "No embedding cellxgene can draw" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert not [ep for ep in galaxy.entry_points(job["id"]) if ep.get("active")]
