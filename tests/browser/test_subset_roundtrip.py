"""Issue 26, done means: in a real Galaxy, a user labels some cells in the viewer, asks for a new
dataset from them, and finds it in the history holding exactly those cells (read back with anndata,
every part equal to anndata's own `adata[mask]` of the dataset with the labels merged). The same
for a subset asked for at Finish, which lands in the job's "cell subsets" collection. On the way,
inside Galaxy's centre panel (Visualize), the Galaxy controls stay clear of the embedding selector
and the plot at 1366x768, 1600x900 and 1920x1080.

A scenario body on the current fixtures (galaxy, galaxy_page, fresh_history); the lead folds it
into the deployment-parametrized scenarios.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anndata
import pandas as pd
import pytest
from galaxy_cellxgene.merge import add_labels_to_obs
from playwright.sync_api import expect
from support.anndata_compare import assert_same_anndata
from support.browser_fixture import switch_to_history
from support.cellxgene_ui import (
    WINDOW_SIZES,
    assert_controls_clear_of_the_plot,
    create_category,
    label_selection,
    pick_subset,
    runtime_status,
    select_only,
    wait_for_cells,
    wait_until_saved,
)
from support.fixtures import DEMO
from support.galaxy_fixture import VIEWER_TOOL
from support.galaxy_ui import hide_tool_panel, open_visualization, require_plugin, viewer_frame

pytestmark = [pytest.mark.browser, pytest.mark.galaxy, pytest.mark.slow]

CATEGORY = "picked"
LABEL = ("louvain", "1", "my_monocytes")
AT_FINISH = ("louvain", "3")
PLACED = """() => {
  const box = document.querySelector('#galaxy-cellxgene-controls');
  const grid = box && box.parentElement;
  if (!grid || !grid.style.gridTemplateColumns) return false;
  const right = grid.getBoundingClientRect().right <= document.documentElement.clientWidth + 1;
  return box.dataset.side === (right ? 'right' : 'left');
}"""


def expected(obs_labels: dict[str, str] | None, column: str, values: list[str]) -> anndata.AnnData:
    adata = anndata.read_h5ad(DEMO)
    if obs_labels is not None:
        labels = pd.DataFrame({CATEGORY: [obs_labels.get(str(c), "unassigned") for c in adata.obs_names]})
        adata.obs = add_labels_to_obs(adata.obs, labels.set_axis(adata.obs_names))
    return adata[adata.obs[column].astype(str).isin(values).to_numpy()].copy()


@pytest.mark.timeout(900)
def test_new_dataset_from_labelled_cells_lands_in_the_history(
    galaxy: Any, galaxy_page: Any, shots: Any, fresh_history: Callable[[str], str], tmp_path: Path
) -> None:
    page = galaxy_page
    obs = anndata.read_h5ad(DEMO, backed="r").obs.copy()
    total = len(obs)
    history_id = fresh_history("subset round trip")
    demo = galaxy.upload_test_data(history_id, DEMO.name, ext="h5ad")
    switch_to_history(page, galaxy.url, history_id)
    expect(page.locator(f"#dataset-{demo['id']}")).to_be_visible()
    require_plugin(galaxy, "cellxgene", demo["id"])
    open_visualization(page, demo["id"], "cellxgene")
    viewer = viewer_frame(page, 240.0)
    wait_for_cells(viewer, total, total, timeout=60_000)
    viewer.locator("#galaxy-cellxgene-subset").wait_for()

    # Galaxy's centre panel, tool and history panels open, at three window sizes.
    for width, height in WINDOW_SIZES:
        page.set_viewport_size({"width": width, "height": height})
        wait_for_cells(viewer, total, total)
        # Readiness, not the assertion: the box has been placed for the frame's new width.
        viewer.wait_for_function(PLACED)
        assert_controls_clear_of_the_plot(viewer)
        shots(page, f"centre-panel-{width}x{height}")
    hide_tool_panel(page)

    # Label some cells through cellxgene's own UI.
    create_category(viewer, CATEGORY)
    saves = runtime_status(viewer)["label_saves"]
    count = select_only(viewer, *LABEL[:2], total=total)
    label_selection(viewer, CATEGORY, LABEL[2], count)
    wait_until_saved(viewer, saves)

    # "New dataset from cells" -> "Add to history now": answered at once, written beside the viewer.
    pick_subset(viewer, CATEGORY, [LABEL[2]], "#galaxy-cellxgene-subset-now")
    title = f"cellxgene on {DEMO.name}: {LABEL[2]} ({count:,} cells)"
    status = viewer.get_by_test_id("galaxy-subset-status")
    expect(status).to_contain_text("In your Galaxy history", timeout=240_000)
    assert_controls_clear_of_the_plot(viewer)
    shots(page, "subset-sent", doc="subset-1-sent")
    [item] = [i for i in galaxy.history_contents(history_id) if i.get("name") == title and not i.get("deleted")]
    galaxy.wait_for_dataset(item["id"])
    expect(page.locator(f"#dataset-{item['id']}[data-state=ok]")).to_be_visible(timeout=60_000)
    assert galaxy.dataset(item["id"])["extension"] == "h5ad"
    sent = tmp_path / "sent.h5ad"
    sent.write_bytes(galaxy.dataset_bytes(item["id"]))
    labelled = {str(c): LABEL[2] for c in obs.index[obs[LABEL[0]].astype(str) == LABEL[1]]}
    assert_same_anndata(anndata.read_h5ad(sent), expected(labelled, CATEGORY, [LABEL[2]]))

    # "Save at Finish" for a cluster; Finish; the job's subsets collection holds it.
    pick_subset(viewer, AT_FINISH[0], [AT_FINISH[1]], "#galaxy-cellxgene-subset-finish")
    expect(status).to_contain_text("Will be saved at Finish", timeout=30_000)
    jobs = galaxy.get("jobs", params={"history_id": history_id, "tool_id": VIEWER_TOOL})
    job_id = jobs[0]["id"]
    viewer.locator("#galaxy-cellxgene-finish").click()
    expect(viewer.locator("#galaxy-cellxgene-finished")).to_be_visible(timeout=120_000)
    finished = galaxy.wait_for_job(job_id, timeout=240)
    assert finished["state"] == "ok"
    collection = galaxy.collection(finished["output_collections"]["subsets"]["id"])
    [element] = collection["elements"]
    assert element["element_identifier"] == AT_FINISH[1]
    galaxy.wait_for_dataset(element["object"]["id"])
    kept = tmp_path / "kept.h5ad"
    kept.write_bytes(galaxy.dataset_bytes(element["object"]["id"]))
    assert_same_anndata(anndata.read_h5ad(kept), expected(labelled, *AT_FINISH[:1], [AT_FINISH[1]]))
    shots(page, "finished")
    shots.publish()
