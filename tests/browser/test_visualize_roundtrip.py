"""The whole round trip in a real browser against the local Galaxy.

Galaxy's "Visualize" -> cellxgene on the demo dataset; the viewer shows the dataset; a
category is made and a group of cells labelled through cellxgene's own UI; "Export to Galaxy"
puts the labels into the history while the viewer keeps running; more cells are labelled;
"Finish" ends the session; the job's annotations dataset holds exactly the final labels.
On the way: the page is clean (no failed request, no error status, no broken image, no console
error; page_health.py), the Galaxy controls never cover cellxgene's embedding selector, and a
differential expression run through the UI comes back with the export as a tabular dataset
whose top genes are the ones the viewer listed.
Screenshots of every step: test-artifacts/browser/<test>/.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import anndata
import pandas as pd
import pytest
from playwright.sync_api import expect
from support.browser_fixture import switch_to_history
from support.cellxgene_ui import (
    assert_controls_clear_of_the_plot,
    create_category,
    diffexp_genes,
    label_selection,
    run_diffexp,
    runtime_status,
    select_only,
    wait_for_cells,
    wait_until_saved,
)
from support.fixtures import DEMO
from support.galaxy_fixture import VIEWER_TOOL, poll, read_labels_csv
from support.galaxy_ui import hide_tool_panel, launcher, open_visualization, require_plugin, viewer_frame
from support.page_health import PageWatch

pytestmark = [pytest.mark.browser, pytest.mark.galaxy, pytest.mark.slow]

CATEGORY = "my_cell_types"
FIRST = ("louvain", "1", "monocytes_by_hand")
DIFFEXP = ("louvain", "1", "3")  # set 1: cluster 1, set 2: cluster 3
SECOND = ("louvain", "3", "nk_by_hand")
VIEWER_START_TIMEOUT = 240.0


def expected_labels(obs: pd.DataFrame, labelled: list[tuple[str, str, str]]) -> dict[str, str]:
    """{cell: label} for every cell, in obs order; cellxgene writes `unassigned` for the rest."""
    labels = dict.fromkeys(map(str, obs.index), "unassigned")
    for column, value, label in labelled:
        for cell in obs.index[obs[column].astype(str) == value]:
            labels[str(cell)] = label
    return labels


def labels_in(frame: pd.DataFrame) -> dict[str, str]:
    return {str(cell): str(label) for cell, label in frame[CATEGORY].items()}


def viewer_job(galaxy: Any, history_id: str) -> dict[str, Any]:
    jobs = galaxy.get("jobs", params={"history_id": history_id, "tool_id": VIEWER_TOOL, "view": "collection"})
    assert len(jobs) == 1, f"expected one cellxgene job in the history, found {jobs}"
    return galaxy.job(jobs[0]["id"], full=True)


def exported(galaxy: Any, history_id: str) -> list[dict[str, Any]]:
    return [
        item
        for item in galaxy.history_contents(history_id)
        if "(exported " in (item.get("name") or "") and not item.get("deleted")
    ]


@pytest.mark.timeout(900)  # five Galaxy jobs (upload, viewer, two exports, finish) on two cores
def test_visualize_label_export_finish_roundtrip(
    galaxy: Any, galaxy_page: Any, shots: Any, fresh_history: Callable[[str], str]
) -> None:
    page = galaxy_page
    obs = anndata.read_h5ad(DEMO, backed="r").obs.copy()
    total = len(obs)
    history_id = fresh_history("browser round trip")
    demo = galaxy.upload_test_data(history_id, DEMO.name, ext="h5ad")
    switch_to_history(page, galaxy.url, history_id)
    expect(page.locator(f"#dataset-{demo['id']}")).to_be_visible()

    hide_tool_panel(page)
    # Everything the viewer's page asks for goes through its entry point URL.
    watch = PageWatch(page, lambda url: "/interactivetool/ep/" in url)

    # 1. Visualize -> cellxgene: the launcher follows the job, then shows the viewer.
    require_plugin(galaxy, "cellxgene", demo["id"])
    open_visualization(page, demo["id"], "cellxgene")
    try:
        expect(launcher(page).get_by_test_id("cxg-dataset")).to_contain_text(DEMO.name)
        shots(page, "launcher", doc="roundtrip-1-launcher")
    except AssertionError:
        # Only acceptable if the launcher was so quick that the viewer already replaced it.
        if not any("/interactivetool/ep/" in frame.url for frame in page.frames):
            raise
    viewer = viewer_frame(page, VIEWER_START_TIMEOUT)

    # 2. The viewer renders this dataset: its title, every cell.
    wait_for_cells(viewer, total, total, timeout=60_000)
    expect(viewer.get_by_test_id("header")).to_contain_text(DEMO.stem)
    expect(viewer.locator("img[alt='CELLxGENE Annotate Logo']")).to_be_visible()
    viewer.locator("#galaxy-cellxgene-finish").wait_for()
    shots(page, "viewer", doc="roundtrip-2-viewer")
    watch.assert_clean(viewer, "the viewer after loading")
    assert_controls_clear_of_the_plot(viewer)
    job = viewer_job(galaxy, history_id)
    assert job["state"] == "running"

    # 3. A category, and one group of cells labelled through the UI.
    create_category(viewer, CATEGORY)
    saves = runtime_status(viewer)["label_saves"]
    count = select_only(viewer, *FIRST[:2], total=total)
    assert count == int((obs[FIRST[0]].astype(str) == FIRST[1]).sum())
    label_selection(viewer, CATEGORY, FIRST[2], count)
    wait_until_saved(viewer, saves)
    shots(page, "labelled", doc="roundtrip-3-labelled")

    # 3b. Differential expression between two clusters, through the UI's own buttons.
    n_1, n_2 = run_diffexp(viewer, DIFFEXP[0], DIFFEXP[1], DIFFEXP[2], total)
    # Set 1 is exactly the cells just labelled by hand: the user's own label names it first.
    comparison = f"{CATEGORY}: {FIRST[2]} ({n_1} cells) vs {DIFFEXP[0]}: {DIFFEXP[2]} ({n_2} cells)"
    shown = diffexp_genes(viewer, 1)
    assert len(shown) >= 5, shown
    shots(page, "diffexp")

    # 4. Export to Galaxy: new datasets in the history, the viewer still running.
    before = {item["id"] for item in exported(galaxy, history_id)}
    with page.expect_response(
        lambda r: r.url.endswith("/galaxy/export") and r.request.method == "POST", timeout=120_000
    ) as export_answer:
        viewer.get_by_test_id("galaxy-export").click()
    assert export_answer.value.ok, export_answer.value.text()
    expect(viewer.get_by_test_id("galaxy-export-status")).to_contain_text(
        "Added to your Galaxy history", timeout=240_000
    )
    new = [item for item in exported(galaxy, history_id) if item["id"] not in before]
    annotations_export = [item for item in new if "cellxgene annotations" in item["name"]]
    assert len(annotations_export) == 1, new
    diffexp_export = [item for item in new if "differential expression" in item["name"]]
    assert len(diffexp_export) == 1, new
    # Named after what the user picked: each set is exactly one label or cluster.
    assert comparison in diffexp_export[0]["name"], (comparison, diffexp_export[0]["name"])
    for item in new:  # the history panel shows them, finished (green)
        expect(page.locator(f"#dataset-{item['id']}[data-state=ok]")).to_be_visible(timeout=60_000)
    shots(page, "exported", doc="roundtrip-4-exported")
    snapshot = read_labels_csv(galaxy.dataset_text(annotations_export[0]["id"]))
    assert list(snapshot.columns) == [CATEGORY]
    assert labels_in(snapshot) == expected_labels(obs, [FIRST])
    assert galaxy.job(job["id"], full=False)["state"] == "running", "export must not end the session"
    # The history's table: the genes the viewer listed as higher in set 1, in the same order.
    table = galaxy.dataset(diffexp_export[0]["id"])
    assert table["extension"] == "tabular", table["extension"]
    rows = pd.read_csv(io.StringIO(galaxy.dataset_text(diffexp_export[0]["id"])), sep="\t")
    assert list(rows.columns) == [
        "#gene",
        "log_fold_change",
        "p_value",
        "adjusted_p_value",
        "higher_in",
        "set_1",
        "set_2",
    ]
    first_set = rows[rows["higher_in"] == rows["set_1"]]
    assert list(first_set["#gene"])[: len(shown)] == shown
    assert (first_set["log_fold_change"] > 0).all() and (rows["adjusted_p_value"] <= 1).all()
    assert_controls_clear_of_the_plot(viewer)  # also with the export's status text shown
    watch.assert_clean(viewer, "the viewer after exporting")
    # The runtime holds the user's API key; nothing the page receives contains it.
    seen = [export_answer.value.text()] + [
        viewer.evaluate("p => fetch(p, {cache: 'no-store'}).then(r => r.text())", path)
        for path in ("", "galaxy/status", "galaxy/export", "galaxy/static/export.js", "api/v0.2/config")
    ]
    assert all(galaxy.user_key not in text for text in seen)

    # 5. More labels after the export.
    saves = runtime_status(viewer)["label_saves"]
    count = select_only(viewer, *SECOND[:2], total=total)
    label_selection(viewer, CATEGORY, SECOND[2], count)
    wait_until_saved(viewer, saves)
    shots(page, "labelled-more")
    # A second comparison, not exported: Finish sends it to the history.
    before_finish = {item["id"] for item in exported(galaxy, history_id)}
    m_1, m_2 = run_diffexp(viewer, "louvain", "2", SECOND[1], total)
    second_comparison = f"louvain: 2 ({m_1} cells) vs {CATEGORY}: {SECOND[2]} ({m_2} cells)"
    watch.assert_clean(viewer, "the viewer before finishing")

    # 6. Finish: the session ends cleanly and Galaxy collects every output.
    viewer.locator("#galaxy-cellxgene-finish").click()
    expect(viewer.locator("#galaxy-cellxgene-finished")).to_be_visible(timeout=120_000)
    shots(page, "finished", doc="roundtrip-5-finished")
    finished = galaxy.wait_for_job(job["id"], timeout=240)
    assert finished["state"] == "ok", galaxy.job_stderr(job["id"])
    at_finish = [item for item in exported(galaxy, history_id) if item["id"] not in before_finish]
    assert [second_comparison in item["name"] for item in at_finish] == [True], at_finish
    galaxy.wait_for_dataset(at_finish[0]["id"])
    assert len(galaxy.dataset_text(at_finish[0]["id"]).splitlines()) > 1

    # 7. Back in Galaxy: the annotations dataset holds exactly the final labels.
    annotations_id = finished["outputs"]["annotations"]["id"]
    galaxy.wait_for_dataset(annotations_id)
    final = read_labels_csv(galaxy.dataset_text(annotations_id))
    assert list(final.columns) == [CATEGORY]
    assert list(map(str, final.index)) == list(map(str, obs.index))
    assert labels_in(final) == expected_labels(obs, [FIRST, SECOND])
    # The earlier export is a snapshot: it did not change when the session went on.
    again = read_labels_csv(galaxy.dataset_text(annotations_export[0]["id"]))
    assert (again[CATEGORY].astype(str) == SECOND[2]).sum() == 0

    page.goto(f"{galaxy.url}/datasets/{annotations_id}/preview")
    expect(page.get_by_text(SECOND[2]).first).to_be_visible(timeout=60_000)
    poll(
        "the history panel to show the finished outputs",
        lambda: True if page.locator(f"#dataset-{annotations_id}[data-state=ok]").count() else None,
        timeout=60,
    )
    shots(page, "back-in-galaxy", doc="roundtrip-6-back-in-galaxy")
    shots.publish()
