"""Each Galaxy-level behaviour, written once, on every deployment (support.deployments).

Deployments: the suite's Galaxy 26.1.2 as its `local` (no container), `container` (Galaxy's own
Docker code path, podman) and `pulsar` (a Pulsar REST server, no shared file system) users, and
each older release of scripts/galaxy/releases.txt on a Galaxy of its own (no container). What a
deployment cannot do is declared in support.deployments.CANNOT with the reason; such a test is
skipped there and says why.

Every viewer is launched through Galaxy's API and reached through Galaxy's one front URL
(nginx -> gx-it-proxy -> the viewer), and driven over HTTP as cellxgene's web client drives it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anndata as ad
import pandas as pd
import pytest
import requests
from galaxy_cellxgene_testkit import signed_in
from galaxy_cellxgene_testkit.containers import wait_container_gone
from galaxy_cellxgene_testkit.entry_points import open_viewer, proxy_route, start_viewer
from galaxy_cellxgene_testkit.ui_client import UiClient
from support.deployments import Deployment
from support.galaxy_fixture import MERGE_TOOL, ROOT, STATE, TEST_DATA, VIEWER_TOOL, LocalGalaxy, poll, read_labels_csv
from support.pulsar_fixture import PULSAR_STAGING

# The container, pulsar and older-release deployments add the markers `container` and
# `galaxy_releases` (support.deployments): `-m "galaxy and not container"` runs without the image.
pytestmark = [pytest.mark.galaxy, pytest.mark.slow, pytest.mark.timeout(2400)]

CATEGORY = "galaxy_cell_type"  # not an obs column of pbmc_demo.h5ad (that would be refused)
GENE_SET = "galaxy markers"
# Generous: a loaded 2-core machine takes minutes per Galaxy job; a quiet one seconds.
ENTRY_POINT_TIMEOUT = 300
JOB_TIMEOUT = 600
IMAGE_SUFFIX = "cellxgene-galaxy:1.3.0--galaxy0"
PUSHED_NAME = "cellxgene on pbmc_demo.h5ad: cell annotations (saved at "
PULSAR_LABEL = f"org.galaxy-cellxgene.pulsar-staging={PULSAR_STAGING}"


# ------------------------------------------------------------------------------ helpers


def labels_for(n_obs: int, shift: int = 0) -> list[str]:
    """Three labels with spaces, in a pattern a shifted or truncated column would not reproduce."""
    names = ["T cell", "B cell", "NK cell"]
    return [names[(i * 7 + i // 11 + shift) % 3] for i in range(n_obs)]


def column(frame: pd.DataFrame) -> list[str]:
    assert CATEGORY in frame.columns, list(frame.columns)
    return [str(v) for v in frame[CATEGORY]]


def open_through_proxy(galaxy: LocalGalaxy, job_id: str) -> tuple[dict[str, Any], UiClient]:
    entry_point, ui = open_viewer(galaxy, job_id, timeout=ENTRY_POINT_TIMEOUT)
    # Through the front URL: the same origin as Galaxy, under its entry point path.
    assert ui.base_url.startswith(galaxy.url + "/interactivetool/ep/"), ui.base_url
    return entry_point, ui


def decoded(galaxy: LocalGalaxy, encoded: str) -> int:
    return int(galaxy.admin.get(f"configuration/decode/{encoded}")["decoded_id"])


def podman_inspect(name: str) -> dict[str, Any]:
    result = subprocess.run(["podman", "inspect", name], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(result.stdout)[0]


def container_config(galaxy: LocalGalaxy, job_id: str) -> tuple[Path, dict[str, Any]]:
    """The job directory of a container-destination job and the config Galaxy wrote for its monitor."""
    found = sorted((STATE / "data" / "jobs_directory").glob(f"*/{decoded(galaxy, job_id)}"))
    assert len(found) == 1, found
    return found[0], json.loads((found[0] / "configs" / "container_config.json").read_text())


def pulsar_container(galaxy: LocalGalaxy, job_id: str) -> tuple[str, dict[str, Any]]:
    """The container Pulsar started for the job: the one mounting the job's staging directory."""
    job_dir = str(PULSAR_STAGING / str(decoded(galaxy, job_id)))

    def probe() -> tuple[str, dict[str, Any]] | None:
        names = subprocess.run(
            ["podman", "ps", "--filter", f"label={PULSAR_LABEL}", "--format", "{{.Names}}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
        for name in names:
            inspected = subprocess.run(["podman", "inspect", name], capture_output=True, text=True, timeout=60)
            if inspected.returncode == 0:
                info = json.loads(inspected.stdout)[0]
                if any(mount["Source"] == job_dir for mount in info["Mounts"]):
                    return name, info
        return None

    return poll(f"the container of Pulsar job {job_id}", probe, 60)


def container_name(deployment: Deployment, job_id: str) -> str | None:
    """The job's container, on the deployments that run one."""
    if deployment.name == "container":
        return container_config(deployment.galaxy, job_id)[1]["container_name"]
    if deployment.name == "pulsar":
        return pulsar_container(deployment.galaxy, job_id)[0]
    return None


def pushed_copies(galaxy: LocalGalaxy, history_id: str) -> list[dict[str, Any]]:
    """The copies remote_save.py pushed into the history (visible, not deleted)."""
    return [
        item
        for item in galaxy.history_contents(history_id)
        if not item.get("deleted") and item.get("visible") and (item.get("name") or "").startswith(PUSHED_NAME)
    ]


# ------------------------------------------------------------------------------ a running viewer


@pytest.fixture(scope="module")
def running(deployment: Deployment) -> dict[str, Any]:
    """One viewer on the demo dataset, open through the proxy (the fixture `finished` ends it)."""
    galaxy = deployment.galaxy
    submitted = time.monotonic()
    job, outputs = start_viewer(galaxy, deployment.history_id, deployment.demo["id"])
    entry_point, ui = open_through_proxy(galaxy, job["id"])
    active_after = time.monotonic() - submitted
    print(f"{deployment.name}: submit -> active entry point answering in {active_after:.1f} s")
    return {
        "galaxy": galaxy,
        "job": job,
        "outputs": outputs,
        "entry_point": entry_point,
        "ui": ui,
        "active_after": active_after,
    }


def test_viewer_answers_only_under_its_secret_path(
    deployment: Deployment, running: dict[str, Any], record_property: Any
) -> None:
    """Galaxy injects the entry point path into the job (`inject="entry_point_path_for_label"`) and
    records `requires_path_in_url`, and gx-it-proxy forwards the full path. A direct connection to
    the runtime's host and port (what Galaxy's Docker runner publishes, what any local process can
    open) has no path and gets 404; through the proxy, with the path, the page and its API answer."""
    record_property(f"{deployment.name}_submit_to_active_s", round(running["active_after"], 1))
    galaxy = deployment.galaxy
    url = galaxy.entry_point_url(running["entry_point"])
    assert urlsplit(url).path.startswith("/interactivetool/ep/") and url.endswith("/"), url
    route = proxy_route(galaxy.proxy_map, url)
    assert route["requires_path_in_url"] is True, route
    direct = f"http://{route['host']}:{route['port']}"
    for suffix in ("/", "/api/v0.2/config", "/api/v0.2/schema", "/galaxy/status"):
        answer = requests.get(direct + suffix, timeout=10)
        assert answer.status_code == 404, (suffix, answer.status_code)
    finish = requests.post(direct + "/galaxy/finish", headers={"X-Galaxy-Cellxgene": "finish"}, timeout=10)
    assert finish.status_code == 404

    page = signed_in.get(url, cookie=galaxy.session_cookie, timeout=30)
    assert page.status_code == 200 and "galaxy/static/finish.js" in page.text
    config = signed_in.get(url + "api/v0.2/config", cookie=galaxy.session_cookie, timeout=30)
    assert config.status_code == 200 and config.json()["config"]["displayNames"]["dataset"]
    # The logo, where the corrected bundle asks for it, and the script the template names.
    bundle = re.search(r'src="(static/main-[0-9a-f]+\.js)"', page.text)
    assert bundle is not None, page.text
    bundle_text = signed_in.get(url + bundle.group(1), cookie=galaxy.session_cookie, timeout=60).text
    logo = re.search(r'"(static/assets/icon-[0-9a-f]+\.png)"', bundle_text)
    assert logo is not None, "the bundle still asks for the logo outside the entry point"
    icon = signed_in.get(url + logo.group(1), cookie=galaxy.session_cookie, timeout=30)
    assert icon.headers["Content-Type"] == "image/png"
    assert signed_in.get(url + "obsolete.js", cookie=galaxy.session_cookie, timeout=30).status_code == 200
    # A cross-site form post cannot end the session: no custom header.
    forged = signed_in.post(
        url + "galaxy/finish",
        data={"x": "1"},
        headers={"Origin": "https://evil.example"},
        cookie=galaxy.session_cookie,
        timeout=30,
    )
    assert forged.status_code == 403
    assert galaxy.job(running["job"]["id"], full=False)["state"] == "running"


@pytest.mark.needs("container-inspection")
def test_viewer_runs_in_the_deployment_container(deployment: Deployment, running: dict[str, Any]) -> None:
    galaxy, job_id = deployment.galaxy, running["job"]["id"]
    if deployment.name == "container":
        job_dir, config = container_config(galaxy, job_id)
        # Galaxy's JobWrapper.container_monitor_command wrote this for its monitor.
        assert config["container_type"] == "docker", config
        assert config["connection_configuration"]["docker_cmd"] == "podman", config
        # The monitor (not the tool) wrote the port file: the job directory is read-only inside.
        ports = json.loads((job_dir / "container_runtime.json").read_text())
        assert ports["8888"]["tool_port"] == 8888, ports
        assert ports["8888"]["host"] == "127.0.0.1", ports  # docker_host_port_cmd: loopback only
        assert not (job_dir / "container_monitor_exception.txt").exists()
        container = podman_inspect(config["container_name"])
        # docker_set_user unset: Galaxy passes its own uid:gid.
        assert container["Config"]["User"] == f"{os.geteuid()}:{os.getgid()}", container["Config"]["User"]
        # Galaxy's $defaults volumes: job and tool directories read-only, working directory writable.
        mounts = {mount["Destination"]: mount["RW"] for mount in container["Mounts"]}
        assert mounts[str(job_dir)] is False, mounts
        assert mounts[str(ROOT / "tools" / "cellxgene")] is False, mounts
        assert mounts[str(job_dir / "working")] is True, mounts
        assert mounts[str(job_dir / "outputs")] is True, mounts
        # Issue 22 item 8: the dataset store (the inputs) is read-only, and nothing outside this
        # job's own directory is writable.
        assert mounts[str(STATE / "data" / "objects")] is False, mounts
        writable = [target for target, rw in mounts.items() if rw]
        assert all(Path(target).is_relative_to(job_dir) for target in writable), writable
    else:
        job = galaxy.admin.get(f"jobs/{job_id}", params={"full": "true"})
        assert job.get("external_id"), job  # Pulsar's id for it: the job went through the pulsar runner
        _, container = pulsar_container(galaxy, job_id)
        # No shared file system: everything the container sees of the job is Pulsar's staging
        # copy (the tool's runtime included), never Galaxy's job or dataset directories.
        sources = [mount["Source"] for mount in container["Mounts"]]
        assert all(s.startswith(str(PULSAR_STAGING)) or s.endswith("/tool-data") for s in sources), sources
        assert any(s.endswith("/tool_files") for s in sources), sources
        env = dict(item.split("=", 1) for item in container["Config"]["Env"])
        assert env["GALAXY_CELLXGENE_OUTPUTS"] == "staged"
    # The image Galaxy resolved from the tool's <container>.
    assert container["ImageName"].endswith(IMAGE_SUFFIX), container["ImageName"]


@pytest.mark.needs("staged-outputs")
def test_label_save_reaches_the_history_while_the_job_runs(deployment: Deployment, running: dict[str, Any]) -> None:
    """Where outputs are staged copies (Pulsar), the runtime pushes each save into the history."""
    galaxy, ui = deployment.galaxy, running["ui"]
    labels = labels_for(ui.schema()["dataframe"]["nObs"], shift=2)
    ui.save_labels({CATEGORY: labels})
    saved_at = time.monotonic()
    pushed = poll("the pushed save", lambda: pushed_copies(galaxy, deployment.history_id) or None, 120)
    assert len(pushed) == 1, pushed
    copy = galaxy.wait_for_dataset(pushed[0]["id"])
    print(f"{deployment.name}: save -> pushed copy ok in the history in {time.monotonic() - saved_at:.1f} s")
    assert column(read_labels_csv(galaxy.dataset_text(copy["id"]))) == labels
    running["pushed"] = [item["id"] for item in pushed]


@pytest.fixture(scope="module")
def finished(running: dict[str, Any]) -> dict[str, Any]:
    """The running viewer, after labels and a gene set saved as the UI does, ended by Finish."""
    galaxy, ui = running["galaxy"], running["ui"]
    labels = labels_for(ui.schema()["dataframe"]["nObs"])
    genes = list(ad.read_h5ad(TEST_DATA / "pbmc_demo.h5ad", backed="r").var_names[:3])
    gene_set = {
        "geneset_name": GENE_SET,
        "geneset_description": "saved by the Galaxy test",
        "genes": [{"gene_symbol": gene, "gene_description": ""} for gene in genes],
    }
    assert ui.config()["displayNames"]["dataset"]
    ui.save_labels({CATEGORY: labels})
    assert ui.put_gene_sets([gene_set]).status_code == 200
    poll("the gene set save", lambda: ui.status()["gene_set_saves"] >= 1 or None, 30)
    # What the UI reads back after its save, through the proxy.
    assert column(ui.get_labels()) == labels
    galaxy.finish_viewer(ui, running["job"]["id"], JOB_TIMEOUT)
    return {"labels": labels, "genes": genes, "outputs": running["outputs"]}


def test_finish_writes_every_output(
    deployment: Deployment, running: dict[str, Any], finished: dict[str, Any], tmp_path: Path
) -> None:
    """Finish: the labels, the gene sets and the merged h5ad with the labels, all in the history."""
    galaxy, outputs, labels = deployment.galaxy, finished["outputs"], finished["labels"]
    assert galaxy.wait_for_dataset(outputs["annotations"])["extension"] == "csv"
    assert column(galaxy.labels(outputs["annotations"])) == labels
    gene_sets = galaxy.dataset_text(galaxy.wait_for_dataset(outputs["gene_sets"])["id"])
    assert GENE_SET in gene_sets and all(gene in gene_sets for gene in finished["genes"]), gene_sets
    collection = galaxy.collection(outputs["annotated"])
    assert collection["populated_state"] == "ok" and len(collection["elements"]) == 1, collection
    merged_id = collection["elements"][0]["object"]["id"]
    assert galaxy.wait_for_dataset(merged_id)["extension"] == "h5ad"
    merged = ad.read_h5ad(galaxy.download(merged_id, tmp_path / "merged.h5ad"))
    assert isinstance(merged.obs[CATEGORY].dtype, pd.CategoricalDtype)
    assert [str(v) for v in merged.obs[CATEGORY]] == labels
    original = ad.read_h5ad(TEST_DATA / "pbmc_demo.h5ad", backed="r")
    assert merged.shape == original.shape
    assert list(merged.obs_names) == list(original.obs_names)
    # Staged outputs arrived: the session's pushed copies were withdrawn (deleted).
    still_visible = {item["id"] for item in pushed_copies(galaxy, deployment.history_id)}
    assert not still_visible & set(running.get("pushed", [])), running.get("pushed")


@pytest.mark.needs("resume")
def test_resume_shows_the_saved_labels(deployment: Deployment, finished: dict[str, Any]) -> None:
    """A new session on the same dataset, given the finished session's annotations, shows them."""
    galaxy = deployment.galaxy
    previous = {"resume|previous_annotations": {"src": "hda", "id": finished["outputs"]["annotations"]}}
    run = galaxy.run_tool(
        VIEWER_TOOL,
        deployment.history_id,
        {
            "input": {"src": "hda", "id": deployment.demo["id"]},
            "mode|mode_select": "view",
            "mode|idle_timeout": 0,
            **previous,
        },
    )
    job_id = run["jobs"][0]["id"]
    entry_point, ui = open_through_proxy(galaxy, job_id)
    try:
        assert CATEGORY in ui.user_categories()
        assert column(ui.get_labels()) == finished["labels"]
    finally:
        galaxy.stop_entry_point(entry_point["id"])
        galaxy.wait_for_job(job_id, timeout=JOB_TIMEOUT)


@pytest.mark.needs("resume")
def test_merge_tool_rescues_the_annotations(deployment: Deployment, finished: dict[str, Any], tmp_path: Path) -> None:
    """The companion tool turns a session's annotations into the annotated h5ad."""
    galaxy = deployment.galaxy
    run = galaxy.run_tool(
        MERGE_TOOL,
        deployment.history_id,
        {
            "input": {"src": "hda", "id": deployment.demo["id"]},
            "annotations": {"src": "hda", "id": finished["outputs"]["annotations"]},
        },
    )
    job = galaxy.wait_for_job(run["jobs"][0]["id"], timeout=JOB_TIMEOUT)
    assert job["state"] == "ok", galaxy.job_stderr(job["id"])
    merged = ad.read_h5ad(galaxy.download(galaxy.output_ids(run)["output"], tmp_path / "rescued.h5ad"))
    assert [str(v) for v in merged.obs[CATEGORY]] == finished["labels"]


# ------------------------------------------------------------------------------ one viewer each


def test_stop_keeps_the_last_save(deployment: Deployment) -> None:
    """The Stop button: the last label save is in the history, and no merged h5ad is made."""
    galaxy = deployment.galaxy
    job, outputs = start_viewer(galaxy, deployment.history_id, deployment.demo["id"])
    entry_point, ui = open_through_proxy(galaxy, job["id"])
    name = container_name(deployment, job["id"])
    labels = labels_for(ui.schema()["dataframe"]["nObs"], shift=1)
    ui.save_labels({CATEGORY: labels})

    galaxy.stop_entry_point(entry_point["id"])
    stop_at = time.monotonic()
    stopped = galaxy.settle_after_stop(job["id"], JOB_TIMEOUT)
    print(f"{deployment.name}: Stop -> job {stopped['state']} in {time.monotonic() - stop_at:.1f} s")
    assert stopped["state"] == "ok", (stopped["state"], galaxy.job_stderr(job["id"]))
    annotations = galaxy.wait_for_dataset(outputs["annotations"])
    assert annotations["state"] == "ok"
    assert column(read_labels_csv(galaxy.dataset_text(annotations["id"]))) == labels
    # No merged h5ad after a Stop: the list stays empty rather than holding a broken file.
    assert galaxy.collection(outputs["annotated"])["elements"] == [], "a Stop must not produce a merged h5ad"
    if name is not None:
        # Galaxy's kill reached the container (container); on Pulsar the job shell is SIGKILLed
        # and the runtime ends itself once Pulsar deletes the staging directory.
        wait_container_gone(name, 180)
        print(f"{deployment.name}: Stop -> container gone in {time.monotonic() - stop_at:.1f} s")


def test_failing_input_shows_the_runtime_message(deployment: Deployment, record_property: Any) -> None:
    galaxy = deployment.galaxy
    broken = galaxy.upload_test_data(deployment.history_id, "broken_no_embedding.h5ad", ext="h5ad")
    started = time.monotonic()
    job, _ = start_viewer(galaxy, deployment.history_id, broken["id"])
    finished = galaxy.wait_for_job(job["id"], timeout=JOB_TIMEOUT)
    elapsed = time.monotonic() - started
    print(f"{deployment.name}: failing input -> job {finished['state']} in {elapsed:.1f} s")
    record_property(f"{deployment.name}_failing_input_s", round(elapsed, 1))
    assert finished["state"] == "error", finished["state"]
    stderr = galaxy.job_stderr(job["id"])
    # The runtime's own message (what is wrong, then how to fix it), from wherever it ran; not a
    # traceback, not the engine's. (The tool's own stderr: Galaxy 24.2.4's metadata step adds a
    # traceback of its own to the job's, an ImportError of isatools, whose only source is a git URL
    # its pinned install leaves out: scripts/galaxy/constraints-24.2.4.txt.)
    assert "No embedding cellxgene can draw" in stderr, stderr
    tool_stderr = galaxy.job(job["id"], full=True).get("tool_stderr") or ""
    assert "No embedding cellxgene can draw" in tool_stderr, tool_stderr
    assert "Traceback" not in tool_stderr, tool_stderr
    # No entry point was ever activated for a dataset that cannot be shown.
    assert not [ep for ep in galaxy.entry_points(job["id"]) if ep.get("active")]


# ------------------------------------------------------------------------------ the release's own


def test_visualize_plugin_is_offered_for_h5ad(deployment: Deployment) -> None:
    """Galaxy loaded the plugin (server side) and offers it for an h5ad dataset."""
    plugins = {p["name"]: p for p in deployment.galaxy.get("plugins", params={"dataset_id": deployment.demo["id"]})}
    assert "cellxgene" in plugins, sorted(plugins)
    assert plugins["cellxgene"]["specs"]["tool_id"] == VIEWER_TOOL


@pytest.mark.browser
@pytest.mark.timeout(1200)
@pytest.mark.needs("browser", "browser-label-stop")
def test_visualize_label_and_stop_in_the_browser(deployment: Deployment, browser_page: Any) -> None:
    """A person's round trip: Visualize on the dataset, a label in the viewer, Stop."""
    from support.visualize_flow import visualize_label_and_stop

    category = f"{deployment.name.replace('.', '_')}_cell_types"
    job_id = visualize_label_and_stop(deployment.galaxy, browser_page, category, ("louvain", "1", "monocytes"))
    if deployment.name == "container":
        job = deployment.galaxy.admin.get(f"jobs/{job_id}", params={"full": "true"})
        metrics = {m["name"]: m["raw_value"] for m in job["job_metrics"]}
        assert metrics.get("container_type") == "docker", metrics


# The most telling of the tools' <tests> (all of them run on the newest release in
# test_galaxy_planemo.py): the h5ad metadata filling the form's selects (data_meta filters), a
# refused input's own message and exit code, and a collection input through the interactive
# tool's idle timeout. The merge tool's h5ad is what Finish writes (test_finish_writes_every_output).
TOOL_TESTS = (
    ("interactive_tool_cellxgene", 1),
    ("interactive_tool_cellxgene", 6),
    ("interactive_tool_cellxgene_many", 0),
)


def galaxy_tool_test() -> Path:
    """galaxy-tool-test from planemo's venv (scripts/planemo.sh installs it on first use)."""
    runner = Path(os.environ.get("PLANEMO_VENV") or ROOT / ".cache" / "planemo-venv") / "bin" / "galaxy-tool-test"
    if not runner.exists():
        subprocess.run(["bash", str(ROOT / "scripts" / "planemo.sh"), "--version"], check=True, timeout=900)
    return runner


@pytest.mark.needs("tool-test-subset")
def test_tool_tests_pass(deployment: Deployment, tmp_path: Path) -> None:
    galaxy = deployment.galaxy
    keys = ["--galaxy-url", galaxy.url, "--admin-key", galaxy.admin_key, "--key", galaxy.user_key]
    # All at once: most of a tool test is Galaxy's own job overhead, which overlaps well.
    running = []
    for tool_id, index in TOOL_TESTS:
        name = f"{tool_id}-{index}"
        command = [str(galaxy_tool_test()), *keys, "--tool-id", tool_id, "--test-index", str(index)]
        command += ["--test-data", str(TEST_DATA), "--output-json", str(tmp_path / f"{name}.json")]
        with (tmp_path / f"{name}.log").open("w") as log:
            running.append((name, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)))
    failed = []
    for name, process in running:
        code = process.wait(timeout=900)
        report = tmp_path / f"{name}.json"
        statuses = [t["data"]["status"] for t in json.loads(report.read_text())["tests"]] if report.exists() else []
        if statuses != ["success"] or code != 0:
            failed.append(f"{name}: {statuses} (exit {code})\n{(tmp_path / f'{name}.log').read_text()[-3000:]}")
    assert not failed, "\n".join(failed)
