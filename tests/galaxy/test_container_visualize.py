"""Issue 14, part 1: one browser round trip through "Visualize" on the container destination.

The demo user of the container Galaxy (fixture `galaxy_container`) opens Visualize ->
cellxgene on the demo dataset in Debian chromium; the plugin starts the tool, Galaxy runs it
in the image through its own Docker code path, and the viewer renders every cell through
gx-it-proxy; a group of cells labelled in cellxgene's UI lands in the job's annotations
output, and Stop keeps it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anndata
import pytest
from browser.cellxgene_ui import create_category, label_selection, runtime_status, select_only, wait_for_cells
from browser.cellxgene_ui import wait_until_saved as wait_until_ui_saved
from browser.galaxy_ui import hide_tool_panel, open_visualization, require_plugin, viewer_frame
from support.browser_fixture import log_in, switch_to_history
from support.galaxy_fixture import VIEWER_TOOL, LocalGalaxy, poll, read_labels_csv

pytestmark = [pytest.mark.browser, pytest.mark.galaxy, pytest.mark.container, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "test-data" / "pbmc_demo.h5ad"
CATEGORY = "container_cell_types"
GROUP = ("louvain", "1", "monocytes_in_a_container")


@pytest.mark.timeout(900)
def test_visualize_in_the_container(galaxy_container: LocalGalaxy, browser_page: Any) -> None:
    galaxy, page = galaxy_container, browser_page
    log_in(page, galaxy.url, galaxy.credentials["user_email"], galaxy.credentials["user_password"])
    obs = anndata.read_h5ad(DEMO, backed="r").obs.copy()
    total = len(obs)
    history_id = galaxy.new_history("container visualize")
    demo = galaxy.upload_test_data(history_id, DEMO.name, ext="h5ad")
    switch_to_history(page, galaxy.url, history_id)
    hide_tool_panel(page)
    require_plugin(galaxy, "cellxgene", demo["id"])
    open_visualization(page, demo["id"], "cellxgene")
    viewer = viewer_frame(page, 240.0)
    wait_for_cells(viewer, total, total, timeout=60_000)

    create_category(viewer, CATEGORY)
    saves = runtime_status(viewer)["label_saves"]
    count = select_only(viewer, *GROUP[:2], total=total)
    label_selection(viewer, CATEGORY, GROUP[2], count)
    wait_until_ui_saved(viewer, saves)

    jobs = galaxy.get("jobs", params={"history_id": history_id, "tool_id": VIEWER_TOOL, "view": "collection"})
    assert len(jobs) == 1, jobs
    job_id = jobs[0]["id"]
    entry_points = [ep for ep in galaxy.entry_points(job_id) if ep.get("active")]
    assert entry_points, "the viewer's entry point is not active"
    galaxy.stop_entry_point(entry_points[0]["id"])
    poll("the job to end after Stop", lambda: galaxy.job(job_id, full=False)["state"] == "ok" or None, 600)
    # Galaxy's own job metrics say where it ran.
    metrics = {
        m["name"]: m["raw_value"] for m in galaxy.admin.get(f"jobs/{job_id}", params={"full": "true"})["job_metrics"]
    }
    assert metrics.get("container_type") == "docker", metrics

    outputs = galaxy.job(job_id)["outputs"]
    annotations_id = outputs["annotations"]["id"]
    labels = read_labels_csv(galaxy.dataset_text(galaxy.wait_for_dataset(annotations_id)["id"]))
    expected = (obs[GROUP[0]].astype(str) == GROUP[1]).sum()
    assert int((labels[CATEGORY].astype(str) == GROUP[2]).sum()) == int(expected) == count
