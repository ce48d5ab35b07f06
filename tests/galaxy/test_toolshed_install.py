"""Issue 14, part 2: installed from a Tool Shed, the way an admin does.

A local Tool Shed (PyPI galaxy-tool-shed 26.1.2, scripts/toolshed.sh) gets this repository
from .shed.yml with `planemo shed_create` (create + upload); the container Galaxy of the
suite (it lists that shed in its tool_sheds_conf) installs it through its admin API
(`POST /api/tool_shed_repositories`, what ephemeris `shed-tools` calls). Then: every file
the tools need arrived, the installed tools run, the installed viewer opens through
gx-it-proxy, and the tool ids behave as docs/admin.md says beside core's cellxgene 1.1.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from galaxy_cellxgene_testkit.ui_client import UiClient
from support.galaxy_fixture import STATE as GALAXY_STATE
from support.galaxy_fixture import TOOLSHED_URL, VIEWER_TOOL, LocalGalaxy, poll

pytestmark = [pytest.mark.galaxy, pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
TOOLSHED_SH = ROOT / "scripts" / "toolshed.sh"
PLANEMO = ROOT / "scripts" / "planemo.sh"
SHED_STATE = Path(os.environ.get("TOOLSHED_STATE") or ROOT / ".toolshed")
NAME, OWNER = "cellxgene", "iuc"
OURS = "1.3.0+galaxy0"


@pytest.fixture(scope="module")
def toolshed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A fresh local Tool Shed holding this repository, uploaded by planemo from .shed.yml."""
    port = TOOLSHED_URL.rstrip("/").rsplit(":", 1)[1]
    env = {**os.environ, "TOOLSHED_PORT": port, "TOOLSHED_STATE": str(SHED_STATE)}
    subprocess.run(["bash", str(TOOLSHED_SH), "stop"], env=env, check=False, timeout=120)
    # A fresh shed each run: the repository is created, not found.
    subprocess.run(["rm", "-rf", str(SHED_STATE / "data"), str(SHED_STATE / "credentials.json")], check=True)
    started = subprocess.run(["bash", str(TOOLSHED_SH), "start"], env=env, capture_output=True, text=True, timeout=900)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        credentials = json.loads((SHED_STATE / "credentials.json").read_text())
        t0 = time.monotonic()
        created = subprocess.run(
            [
                "bash",
                str(PLANEMO),
                "shed_create",
                "--shed_target",
                TOOLSHED_URL,
                "--shed_key",
                credentials["admin_key"],
                str(ROOT),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        print(f"planemo shed_create (create + upload) took {time.monotonic() - t0:.1f} s")
        yield credentials
    finally:
        subprocess.run(["bash", str(TOOLSHED_SH), "stop"], env=env, check=False, timeout=120)


def shed_get(path: str, **params: str) -> Any:
    response = requests.get(TOOLSHED_URL + "api/" + path, params=params, timeout=60)
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def installed(galaxy_container: LocalGalaxy, toolshed: dict[str, Any]) -> dict[str, Any]:
    revisions = shed_get("repositories/get_ordered_installable_revisions", name=NAME, owner=OWNER)
    assert revisions, "the shed has no installable revision"
    # A Galaxy reused from an earlier run holds that run's install (from a shed since wiped).
    for old in galaxy_container.admin.get("tool_shed_repositories", params={"name": NAME, "owner": OWNER}):
        if not old.get("deleted"):
            galaxy_container.admin.delete(f"tool_shed_repositories/{old['id']}", params={"remove_from_disk": "true"})
    t0 = time.monotonic()
    result = galaxy_container.admin.post(
        "tool_shed_repositories",
        {
            "tool_shed_url": TOOLSHED_URL,
            "name": NAME,
            "owner": OWNER,
            "changeset_revision": revisions[-1],
            "new_tool_panel_section_label": "Single-cell (Tool Shed)",
            "install_repository_dependencies": False,
            "install_tool_dependencies": False,
            "install_resolver_dependencies": False,
        },
    )
    repositories = result if isinstance(result, list) else []
    assert repositories, result
    repository = poll(
        "the repository to be installed",
        lambda: (lambda r: r if r["status"] == "Installed" else None)(
            galaxy_container.admin.get(f"tool_shed_repositories/{repositories[0]['id']}")
        ),
        600,
    )
    print(f"Galaxy installed the repository in {time.monotonic() - t0:.1f} s")
    guids = {
        tool["id"].split("/repos/", 1)[1].split("/")[2]: tool["id"]
        for tool in galaxy_container.get("tools", params={"in_panel": "false"})
        if "/repos/iuc/cellxgene/" in tool["id"]
    }
    return {"repository": repository, "guids": guids}


def installed_folder(repository: dict[str, Any]) -> Path:
    revision = repository["installed_changeset_revision"]
    found = sorted((GALAXY_STATE / "data").glob(f"shed_tools/*/repos/{OWNER}/{NAME}/{revision}/{NAME}"))
    assert len(found) == 1, found
    return found[0]


def test_every_file_arrives_through_the_shed(installed: dict[str, Any]) -> None:
    folder = installed_folder(installed["repository"])
    shipped = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and ".hg" not in p.parts}
    repository = ROOT / "tools" / "cellxgene"
    needed = {
        str(p.relative_to(repository))
        for p in repository.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    needed |= {f"test-data/{p.name}" for p in (ROOT / "test-data").iterdir() if p.is_file()}
    missing = sorted(needed - shipped)
    assert not missing, f"the installed repository lacks {missing}"


def test_installed_tools_are_loaded_under_their_shed_ids(installed: dict[str, Any]) -> None:
    assert set(installed["guids"]) == {VIEWER_TOOL, "interactive_tool_cellxgene_many", "cellxgene_merge_annotations"}
    for guid in installed["guids"].values():
        assert guid.endswith("/" + OURS), guid


def ran_in_a_container(galaxy: LocalGalaxy, job_id: str) -> bool:
    """Galaxy's own job metrics name the container the job ran in (the job went to the container
    destination: the job configuration maps the short id, and Galaxy applies it to shed guids)."""
    metrics = {
        m["name"]: m["raw_value"] for m in galaxy.admin.get(f"jobs/{job_id}", params={"full": "true"})["job_metrics"]
    }
    return metrics.get("container_type") == "docker" and "cellxgene-galaxy" in metrics.get("container_id", "")


def test_the_installed_check_runs(galaxy_container: LocalGalaxy, installed: dict[str, Any]) -> None:
    history_id = galaxy_container.new_history("installed from the shed")
    dataset = galaxy_container.upload_test_data(history_id, "pbmc_demo.h5ad", ext="h5ad")
    run = galaxy_container.run_tool(
        installed["guids"][VIEWER_TOOL],
        history_id,
        {"input": {"src": "hda", "id": dataset["id"]}, "mode|mode_select": "check"},
    )
    job = galaxy_container.wait_for_job(run["jobs"][0]["id"], timeout=600)
    assert job["state"] == "ok", galaxy_container.job_stderr(job["id"])
    assert ran_in_a_container(galaxy_container, job["id"])
    report = galaxy_container.dataset_text(galaxy_container.output_ids(run)["report"])
    assert "can be opened in cellxgene" in report, report


def test_the_installed_viewer_opens(galaxy_container: LocalGalaxy, installed: dict[str, Any]) -> None:
    history_id = galaxy_container.new_history("installed viewer")
    dataset = galaxy_container.upload_test_data(history_id, "pbmc_demo.h5ad", ext="h5ad")
    run = galaxy_container.run_tool(
        installed["guids"][VIEWER_TOOL],
        history_id,
        {"input": {"src": "hda", "id": dataset["id"]}, "mode|mode_select": "view", "mode|idle_timeout": 0},
    )
    job_id = run["jobs"][0]["id"]
    entry_point = galaxy_container.wait_for_entry_point(job_id, timeout=300)
    try:
        ui = UiClient(galaxy_container.entry_point_url(entry_point), cookie=galaxy_container.session_cookie)
        health = poll(
            "the installed viewer through gx-it-proxy", lambda: ui.health() if ui.get("health").ok else None, 60
        )
        assert health
        assert ui.schema()["dataframe"]["nObs"] == 320
    finally:
        galaxy_container.stop_entry_point(entry_point["id"])
        galaxy_container.wait_for_job(job_id, timeout=600)
    # Job metrics are recorded when Galaxy finishes the stopped job (a moment after `stopped`).
    poll("the job's container metrics", lambda: ran_in_a_container(galaxy_container, job_id) or None, 120)


def test_the_short_id_resolves_to_a_tool_conf_tool_before_a_shed_install(
    galaxy_container: LocalGalaxy, installed: dict[str, Any]
) -> None:
    """The trap behind docs/admin.md's tool-id advice: Galaxy resolves an exact id before any
    Tool Shed guid, so the Visualize plugin's short id runs a tool_conf tool of that id (here
    the repository's own copy; on a server, core's 1.1.1 if listed) rather than the shed install."""
    history_id = galaxy_container.new_history("short id")
    dataset = galaxy_container.upload_test_data(history_id, "pbmc_demo.h5ad", ext="h5ad")
    run = galaxy_container.run_tool(
        VIEWER_TOOL, history_id, {"input": {"src": "hda", "id": dataset["id"]}, "mode|mode_select": "check"}
    )
    job = galaxy_container.wait_for_job(run["jobs"][0]["id"], timeout=600)
    assert job["tool_id"] == VIEWER_TOOL, job["tool_id"]
    assert installed["guids"][VIEWER_TOOL] != VIEWER_TOOL
