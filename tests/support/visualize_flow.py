"""One short browser round trip through "Visualize", shared by the Galaxies that run it.

Log in as the demo user, upload the demo dataset into a new history, Visualize -> cellxgene,
wait for every cell, label one group of cells in cellxgene's own UI, press Galaxy's Stop
(the API call its button makes), and check the job's annotations output holds the labels.
Used by tests/galaxy/test_deployments.py on the deployments that run it (support.deployments).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anndata

from support.browser_fixture import log_in, switch_to_history
from support.cellxgene_ui import create_category, label_selection, runtime_status, select_only, wait_for_cells
from support.cellxgene_ui import wait_until_saved as wait_until_ui_saved
from support.galaxy_fixture import VIEWER_TOOL, LocalGalaxy, poll
from support.galaxy_ui import hide_tool_panel, open_visualization, require_plugin, viewer_frame

DEMO = Path(__file__).resolve().parents[2] / "test-data" / "pbmc_demo.h5ad"
VIEWER_START_TIMEOUT = 240.0


def visualize_label_and_stop(galaxy: LocalGalaxy, page: Any, category: str, group: tuple[str, str, str]) -> str:
    """The round trip; `group` = (obs column, value, label). Returns the viewer's job id."""
    log_in(page, galaxy.url, galaxy.credentials["user_email"], galaxy.credentials["user_password"])
    obs = anndata.read_h5ad(DEMO, backed="r").obs.copy()
    total = len(obs)
    history_id = galaxy.new_history(f"visualize {category}")
    demo = galaxy.upload_test_data(history_id, DEMO.name, ext="h5ad")
    switch_to_history(page, galaxy.url, history_id)
    hide_tool_panel(page)
    require_plugin(galaxy, "cellxgene", demo["id"])
    open_visualization(page, demo["id"], "cellxgene")
    viewer = viewer_frame(page, VIEWER_START_TIMEOUT)
    wait_for_cells(viewer, total, total, timeout=60_000)

    create_category(viewer, category)
    saves = runtime_status(viewer)["label_saves"]
    count = select_only(viewer, *group[:2], total=total)
    label_selection(viewer, category, group[2], count)
    wait_until_ui_saved(viewer, saves)

    jobs = galaxy.get("jobs", params={"history_id": history_id, "tool_id": VIEWER_TOOL, "view": "collection"})
    assert len(jobs) == 1, jobs
    job_id = jobs[0]["id"]
    entry_points = [ep for ep in galaxy.entry_points(job_id) if ep.get("active")]
    assert entry_points, "the viewer's entry point is not active"
    galaxy.stop_entry_point(entry_points[0]["id"])
    poll("the job to end after Stop", lambda: galaxy.job(job_id, full=False)["state"] == "ok" or None, 600)

    annotations_id = galaxy.job(job_id)["outputs"]["annotations"]["id"]
    labels = galaxy.labels(annotations_id)
    expected = (obs[group[0]].astype(str) == group[1]).sum()
    assert int((labels[category].astype(str) == group[2]).sum()) == int(expected) == count
    return job_id
