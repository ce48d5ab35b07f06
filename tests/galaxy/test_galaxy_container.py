"""Issue 14, part 1: the interactive tool through Galaxy's own container code path.

A second local Galaxy (fixture `galaxy_container`, `GALAXY_CELLXGENE_DESTINATION=container`)
sends every cellxgene tool to a destination with `docker_enabled` and podman as the engine.
Galaxy itself builds the `run` command (user, volumes, published port), its container monitor
(`galaxy-container-monitor`) reads the published port and writes `container_runtime.json`,
and the entry point is reached through gx-it-proxy at the URL Galaxy reports. Nothing here
starts a container or writes a runtime file on the tool's behalf.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd
import pytest
from galaxy_cellxgene_testkit.containers import wait_container_gone
from galaxy_cellxgene_testkit.entry_points import open_viewer, start_viewer
from support.galaxy_fixture import CONTAINER_STATE, TEST_DATA, LocalGalaxy, poll, read_labels_csv

pytestmark = [pytest.mark.galaxy, pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(1800)]

CATEGORY = "galaxy_container_cell_type"  # not an obs column of pbmc_demo.h5ad
ENTRY_POINT_TIMEOUT = 300
JOB_TIMEOUT = 600
MONITOR_FILE = "container_runtime.json"


def labels_for(n_obs: int, shift: int = 0) -> list[str]:
    names = ["T cell", "B cell", "NK cell"]
    return [names[(i * 5 + i // 13 + shift) % 3] for i in range(n_obs)]


def job_directory(galaxy: LocalGalaxy, job_id: str) -> Path:
    decoded = galaxy.admin.get(f"configuration/decode/{job_id}")["decoded_id"]
    found = sorted((CONTAINER_STATE / "data" / "jobs_directory").glob(f"*/{decoded}"))
    assert len(found) == 1, found
    return found[0]


def inspect_container(name: str) -> dict[str, Any]:
    result = subprocess.run(["podman", "inspect", name], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(result.stdout)[0]


@pytest.fixture(scope="module")
def running(galaxy_container: LocalGalaxy, galaxy_container_demo: dict[str, Any]) -> dict[str, Any]:
    """One viewer on the container destination, open through the proxy (finished by test_finish)."""
    submitted = time.monotonic()
    demo = galaxy_container_demo
    job, outputs = start_viewer(galaxy_container, demo["history_id"], demo["id"])
    entry_point, ui = open_viewer(galaxy_container, job["id"], timeout=ENTRY_POINT_TIMEOUT)
    active_after = time.monotonic() - submitted
    print(f"container destination: submit -> active entry point answering in {active_after:.1f} s")
    job_dir = job_directory(galaxy_container, job["id"])
    config = json.loads((job_dir / "configs" / "container_config.json").read_text())
    return {
        "job": job,
        "outputs": outputs,
        "entry_point": entry_point,
        "ui": ui,
        "job_dir": job_dir,
        "config": config,
        "container": inspect_container(config["container_name"]),
        "active_after": active_after,
    }


def test_galaxy_ran_the_viewer_in_its_container(running: dict[str, Any], record_property: Any) -> None:
    record_property("container_submit_to_active_s", round(running["active_after"], 1))
    config, container, job_dir = running["config"], running["container"], running["job_dir"]
    # Galaxy's JobWrapper.container_monitor_command wrote this for its monitor.
    assert config["container_type"] == "docker", config
    assert config["connection_configuration"]["docker_cmd"] == "podman", config
    # The monitor (not the tool) wrote the port file: the job directory is read-only inside.
    ports = json.loads((job_dir / MONITOR_FILE).read_text())
    assert ports["8888"]["tool_port"] == 8888, ports
    assert ports["8888"]["host"] == "127.0.0.1", ports  # docker_host_port_cmd: loopback only
    host_ports = container["HostConfig"]["PortBindings"]["8888/tcp"]
    assert str(ports["8888"]["port"]) in {binding["HostPort"] for binding in host_ports} or any(
        binding["HostPort"] in ("", "0") for binding in host_ports
    ), host_ports
    assert not (job_dir / "container_monitor_exception.txt").exists()
    # The image Galaxy resolved from the tool's <container>, with the user Galaxy passes
    # (docker_set_user unset: Galaxy's own uid:gid).
    assert container["ImageName"].endswith("cellxgene-galaxy:1.3.0--galaxy0"), container["ImageName"]
    assert container["Config"]["User"] == f"{os.geteuid()}:{os.getgid()}", container["Config"]["User"]
    # Galaxy's $defaults volumes: job and tool directories read-only, working directory writable.
    mounts = {mount["Destination"]: mount["RW"] for mount in container["Mounts"]}
    tool_dir = str(Path(__file__).resolve().parents[2] / "tools" / "cellxgene")
    assert mounts[str(job_dir)] is False, mounts
    assert mounts[tool_dir] is False, mounts
    assert mounts[str(job_dir / "working")] is True, mounts
    assert mounts[str(job_dir / "outputs")] is True, mounts
    # outputs_to_working_directory (issue 22 item 8): the dataset store, where the inputs are, is
    # mounted read-only, and nothing outside this job's own directory is writable.
    assert mounts[str(CONTAINER_STATE / "data" / "objects")] is False, mounts
    writable = [target for target, rw in mounts.items() if rw]
    assert all(Path(target).is_relative_to(job_dir) for target in writable), writable


def test_label_save_lands_in_the_output_and_finish_writes_the_merged_h5ad(
    galaxy_container: LocalGalaxy, running: dict[str, Any], tmp_path: Path
) -> None:
    galaxy, ui, outputs = galaxy_container, running["ui"], running["outputs"]
    labels = labels_for(ui.schema()["dataframe"]["nObs"])
    assert ui.put_labels({CATEGORY: labels}).status_code == 200
    poll("the save", lambda: ui.status() if ui.status()["label_saves"] >= 1 else None, 30)

    galaxy.finish_viewer(ui, running["job"]["id"], JOB_TIMEOUT)

    annotations = galaxy.labels(outputs["annotations"])
    assert [str(v) for v in annotations[CATEGORY]] == labels
    elements = galaxy.collection(outputs["annotated"])["elements"]
    assert len(elements) == 1, elements
    merged = ad.read_h5ad(galaxy.download(elements[0]["object"]["id"], tmp_path / "merged.h5ad"))
    assert isinstance(merged.obs[CATEGORY].dtype, pd.CategoricalDtype)
    assert [str(v) for v in merged.obs[CATEGORY]] == labels
    assert merged.shape == ad.read_h5ad(TEST_DATA / "pbmc_demo.h5ad", backed="r").shape


def test_stop_keeps_the_last_save(galaxy_container: LocalGalaxy, galaxy_container_demo: dict[str, Any]) -> None:
    galaxy = galaxy_container
    job, outputs = start_viewer(galaxy, galaxy_container_demo["history_id"], galaxy_container_demo["id"])
    entry_point, ui = open_viewer(galaxy, job["id"], timeout=ENTRY_POINT_TIMEOUT)
    name = json.loads((job_directory(galaxy, job["id"]) / "configs" / "container_config.json").read_text())[
        "container_name"
    ]
    labels = labels_for(ui.schema()["dataframe"]["nObs"], shift=1)
    assert ui.put_labels({CATEGORY: labels}).status_code == 200
    poll("the save", lambda: ui.status() if ui.status()["label_saves"] >= 1 else None, 30)

    galaxy.stop_entry_point(entry_point["id"])  # the Stop button
    stopped = galaxy.settle_after_stop(job["id"], JOB_TIMEOUT)
    assert stopped["state"] == "ok", (stopped["state"], galaxy.job_stderr(job["id"]))
    annotations = galaxy.wait_for_dataset(outputs["annotations"])
    assert [str(v) for v in read_labels_csv(galaxy.dataset_text(annotations["id"]))[CATEGORY]] == labels
    assert galaxy.collection(outputs["annotated"])["elements"] == [], "a Stop must not produce a merged h5ad"

    # Galaxy's kill reached the container (--rm removes it once it ends).
    wait_container_gone(name, 60)


def test_failing_input_shows_the_runtime_message(
    galaxy_container: LocalGalaxy, galaxy_container_demo: dict[str, Any]
) -> None:
    galaxy = galaxy_container
    history = galaxy_container_demo["history_id"]
    broken = galaxy.upload_test_data(history, "broken_no_embedding.h5ad", ext="h5ad")
    job, _ = start_viewer(galaxy, history, broken["id"])
    finished = galaxy.wait_for_job(job["id"], timeout=JOB_TIMEOUT)
    assert finished["state"] == "error", finished["state"]
    stderr = galaxy.job_stderr(job["id"])
    # The runtime's own message from inside the container, not a traceback, not the engine's.
    assert "embedding" in stderr.lower(), stderr
    assert "Traceback" not in stderr, stderr
    assert not [ep for ep in galaxy.entry_points(job["id"]) if ep.get("active")]


def test_time_to_active_entry_point_without_a_container(
    galaxy: LocalGalaxy, galaxy_history: str, galaxy_demo: dict[str, Any], record_property: Any
) -> None:
    """The same measurement on the no-container destination, for the admin guide's comparison."""
    submitted = time.monotonic()
    job, _ = start_viewer(galaxy, galaxy_history, galaxy_demo["id"])
    entry_point, _ = open_viewer(galaxy, job["id"], timeout=ENTRY_POINT_TIMEOUT)
    active_after = time.monotonic() - submitted
    print(f"no-container destination: submit -> active entry point answering in {active_after:.1f} s")
    record_property("local_submit_to_active_s", round(active_after, 1))
    galaxy.stop_entry_point(entry_point["id"])
    assert galaxy.settle_after_stop(job["id"], JOB_TIMEOUT)["state"] == "ok"
