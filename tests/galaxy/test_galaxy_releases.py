"""Issue 14, part 3: the core scenarios on the older Galaxy releases admins run.

The tools declare `profile="24.2"`. Every test here runs once per release of
support.galaxy_releases (25.1.3 and 24.2.4, installed from PyPI and pinned), each on a Galaxy
of its own (no container destination): a subset of the tools' own <tests> (run by
galaxy-tool-test, the runner inside `planemo test`), the entry point through gx-it-proxy with
the injected secret path, a label save kept by Stop, Finish writing the merged h5ad, the
"Visualize" plugin offered for h5ad, and, where PyPI has the built web client (25.0.1 on),
the Visualize round trip in the browser. The full set runs on 26.1.2 (the other modules).
Select with `-m galaxy_releases`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anndata as ad
import pytest
import requests
from galaxy_cellxgene_testkit import signed_in
from support.galaxy_fixture import ROOT, TEST_DATA, VIEWER_TOOL, read_labels_csv
from support.galaxy_releases import RELEASES, ReleaseGalaxy
from test_galaxy_interactive import (
    CATEGORY,
    ENTRY_POINT_TIMEOUT,
    JOB_TIMEOUT,
    assert_labels,
    demo_labels,
    launch_viewer,
    open_viewer,
    wait_until_saved,
)

pytestmark = [pytest.mark.galaxy, pytest.mark.galaxy_releases, pytest.mark.slow, pytest.mark.timeout(2400)]

# The most telling of the tools' 18 <tests> (all run on 26.1.2 in test_galaxy_planemo.py):
# the h5ad metadata filling the form's selects (data_meta filters), a refused input's own
# message and exit code, and a collection input through the interactive tool's idle timeout.
# The merge tool's h5ad is what Finish writes (test_finish_writes_the_merged_h5ad).
TOOL_TESTS = (
    ("interactive_tool_cellxgene", 1),
    ("interactive_tool_cellxgene", 6),
    ("interactive_tool_cellxgene_many", 0),
)
WITH_WEB_CLIENT = [r.version for r in RELEASES if r.web_client]


@pytest.fixture(scope="module")
def release_demo(galaxy_release: ReleaseGalaxy) -> dict[str, Any]:
    """The demo dataset as h5ad, in a history of its own (its `history_id`)."""
    history_id = galaxy_release.new_history(f"pytest releases {time.strftime('%H:%M:%S')}")
    return galaxy_release.upload_test_data(history_id, "pbmc_demo.h5ad", ext="h5ad")


def galaxy_tool_test() -> Path:
    """galaxy-tool-test from planemo's venv (scripts/planemo.sh installs it on first use)."""
    runner = Path(os.environ.get("PLANEMO_VENV") or ROOT / ".cache" / "planemo-venv") / "bin" / "galaxy-tool-test"
    if not runner.exists():
        subprocess.run(["bash", str(ROOT / "scripts" / "planemo.sh"), "--version"], check=True, timeout=900)
    return runner


def test_tool_tests_pass(galaxy_release: ReleaseGalaxy, tmp_path: Path) -> None:
    runner = galaxy_tool_test()
    keys = [
        "--galaxy-url",
        galaxy_release.url,
        "--admin-key",
        galaxy_release.admin_key,
        "--key",
        galaxy_release.user_key,
    ]
    # All at once: most of a tool test is Galaxy's own job overhead, which overlaps well.
    running = []
    for tool_id, index in TOOL_TESTS:
        name = f"{tool_id}-{index}"
        command = [str(runner), *keys, "--tool-id", tool_id, "--test-index", str(index)]
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


def proxy_route(galaxy: ReleaseGalaxy, entry_point_url: str) -> dict[str, Any]:
    """The route gx-it-proxy follows for this entry point (host, port, requires_path_in_url)."""
    key, token = urlsplit(entry_point_url).path.strip("/").split("/")[-2:]
    with sqlite3.connect(galaxy.proxy_map) as connection:
        row = connection.execute("SELECT host, port, token, info FROM gxitproxy WHERE key = ?", (key,)).fetchone()
    assert row is not None and row[2] == token, f"no route for {entry_point_url} in {galaxy.proxy_map}"
    return {"host": row[0], "port": int(row[1]), **json.loads(row[3] or "{}")}


def test_entry_point_path_label_save_and_stop(galaxy_release: ReleaseGalaxy, release_demo: dict[str, Any]) -> None:
    galaxy = galaxy_release
    submitted = time.monotonic()
    job, outputs = launch_viewer(galaxy, release_demo["history_id"], release_demo["id"])
    entry_point = galaxy.wait_for_entry_point(job["id"], timeout=ENTRY_POINT_TIMEOUT)
    print(f"Galaxy {galaxy.release.version}: submit -> active entry point {time.monotonic() - submitted:.1f} s")
    _, ui = open_viewer(galaxy, job["id"])

    # entry_point_path_for_label reached the runtime and requires_path_in_url reached the proxy:
    # only the full secret path answers.
    url = galaxy.entry_point_url(entry_point)
    route = proxy_route(galaxy, url)
    assert route["requires_path_in_url"] is True, route
    assert requests.get(f"http://{route['host']}:{route['port']}/", timeout=10).status_code == 404
    # With the path, and the owner's Galaxy session (a browser sends it through the proxy).
    assert signed_in.get(f"http://{route['host']}:{route['port']}{urlsplit(url).path}", like=url, timeout=10).ok

    labels = list(reversed(demo_labels(ui.schema()["dataframe"]["nObs"])))
    assert ui.put_labels({CATEGORY: labels}).status_code == 200
    wait_until_saved(ui, label_saves=1)
    stopped = galaxy.stop_and_settle(entry_point["id"], job["id"], JOB_TIMEOUT)
    assert stopped["state"] == "ok", (stopped["state"], galaxy.job_stderr(job["id"]))
    galaxy.wait_for_dataset(outputs["annotations"])
    assert_labels(read_labels_csv(galaxy.dataset_text(outputs["annotations"])), labels)
    assert galaxy.collection(outputs["annotated"])["elements"] == [], "a Stop must not produce a merged h5ad"


def test_finish_writes_the_merged_h5ad(
    galaxy_release: ReleaseGalaxy, release_demo: dict[str, Any], tmp_path: Path
) -> None:
    galaxy = galaxy_release
    job, outputs = launch_viewer(galaxy, release_demo["history_id"], release_demo["id"])
    _, ui = open_viewer(galaxy, job["id"])
    labels = demo_labels(ui.schema()["dataframe"]["nObs"])
    assert ui.put_labels({CATEGORY: labels}).status_code == 200
    wait_until_saved(ui, label_saves=1)
    assert ui.finish().status_code == 200

    finished = galaxy.wait_for_job(job["id"], timeout=JOB_TIMEOUT)
    assert finished["state"] == "ok", galaxy.job_stderr(job["id"])
    collection = galaxy.collection(outputs["annotated"])
    assert collection["populated_state"] == "ok" and len(collection["elements"]) == 1, collection
    merged_id = collection["elements"][0]["object"]["id"]
    assert galaxy.wait_for_dataset(merged_id)["extension"] == "h5ad"
    merged = ad.read_h5ad(galaxy.download(merged_id, tmp_path / "merged.h5ad"))
    assert [str(v) for v in merged.obs[CATEGORY]] == labels
    assert list(merged.obs_names) == list(ad.read_h5ad(TEST_DATA / "pbmc_demo.h5ad", backed="r").obs_names)


def test_visualize_plugin_is_offered_for_h5ad(galaxy_release: ReleaseGalaxy, release_demo: dict[str, Any]) -> None:
    """Galaxy loaded the plugin (server side, every release) and offers it for an h5ad dataset."""
    plugins = {p["name"]: p for p in galaxy_release.get("plugins", params={"dataset_id": release_demo["id"]})}
    assert "cellxgene" in plugins, sorted(plugins)
    assert plugins["cellxgene"]["specs"]["tool_id"] == VIEWER_TOOL


@pytest.mark.browser
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("galaxy_release", WITH_WEB_CLIENT, indirect=True)
def test_visualize_in_the_browser(galaxy_release: ReleaseGalaxy, browser_page: Any) -> None:
    from browser.visualize_flow import visualize_label_and_stop

    visualize_label_and_stop(galaxy_release, browser_page, "release_cell_types", ("louvain", "1", "monocytes"))
