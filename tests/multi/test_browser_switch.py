"""A person in headless Chromium: the landing page, two datasets labelled, switching back and forth.

The runtime serves under an entry point path, as in Galaxy (`GALAXY_CELLXGENE_ENTRY_POINT_PATH`,
requires_path_in_url): the landing page and every `d/<name>/` viewer live under it, the port
without it answers 404, and every page is clean (tests/browser/page_health.py).

Debian's /usr/bin/chromium through Playwright (never a downloaded browser). Screenshots go to
test-artifacts/browser/multi/; with GALAXY_CELLXGENE_DOCS_IMG=1 the landing page is also
copied to docs/img/multi-landing.png for the README.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anndata as ad
import pytest
import requests
from galaxy_cellxgene.entry_path import ENV_NAME
from galaxy_cellxgene.labels import read_labels
from support.browser_fixture import LAPTOP_VIEWPORT, empty_folder, new_page
from support.multi import ManyJob, make_dataset, start_many
from support.page_health import PageWatch

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "browser" / "multi"
DOCS_IMG = ROOT / "docs" / "img" / "multi-landing.png"
PREFIX = "/interactivetool/ep/m4ny/0123456789abcdef0123456789abcdef"


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A page in the suite's one browser (tests/support/browser_fixture.py): Playwright's sync
    API allows one running instance per thread, so a second sync_playwright() would fail."""
    shots = empty_folder(SHOTS)
    with new_page(chromium, LAPTOP_VIEWPORT, lambda page: page.screenshot(path=str(shots / "99-at-end.png"))) as page:
        yield page


@pytest.fixture
def job(tmp_path: Path) -> Iterator[ManyJob]:
    data = tmp_path / "data"
    data.mkdir()
    datasets = {
        "PBMC day 0": make_dataset(data / "a.h5ad", 240, seed=0),
        "PBMC day 7 – Müller lab": make_dataset(data / "b.h5ad", 300, seed=1),
        "reference atlas": make_dataset(data / "c.h5ad", 260, seed=2),
    }
    started = start_many(
        tmp_path,
        datasets,
        "--title",
        "Time course: 3 samples",
        "--memory-budget-mb",
        "2048",
        extra_env={ENV_NAME: PREFIX},
    )
    started.url = started.url + PREFIX.lstrip("/") + "/"
    yield started
    started.send(signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        started.wait(10)


def test_switching_between_datasets_in_the_browser_keeps_each_ones_labels(page: Any, job: ManyJob) -> None:
    from playwright.sync_api import expect
    from support.cellxgene_ui import (
        assert_controls_clear_of_the_plot,
        create_category,
        label_selection,
        runtime_status,
        select_only,
        wait_until_saved,
    )

    origin = job.url[: -len(PREFIX) - 1]
    # Without the entry point path the port answers nothing but 404.
    for path in ("/", "/d/PBMC_day_0/", "/galaxy/status"):
        assert requests.get(origin + path, timeout=10).status_code == 404, path
    watch = PageWatch(page, lambda url: url.startswith(origin))
    # cellxgene_ui's helpers take a frame (they reach the page through it).
    frame = page.main_frame
    page.goto(job.url)
    watch.assert_clean(frame, "the landing page")
    expect(page.locator("#datasets tbody tr")).to_have_count(3)
    page.screenshot(path=str(SHOTS / "01-landing.png"))

    # First dataset: label the cells of cluster c1.
    page.get_by_role("link", name="PBMC day 0").click()
    expect(page).to_have_url(job.url + "d/PBMC_day_0/")
    n_a = select_only(frame, "louvain", "c1", 240)
    create_category(frame, "stage")
    label_selection(frame, "stage", "early", n_a)
    wait_until_saved(frame, 0)
    page.screenshot(path=str(SHOTS / "02-first-labelled.png"))
    expect(page.locator("img[alt='CELLxGENE Annotate Logo']")).to_be_visible()
    assert_controls_clear_of_the_plot(frame)
    watch.assert_clean(frame, "the first dataset's viewer")

    # Back to the list through the viewer's own link, then the second dataset.
    page.get_by_role("link", name="All datasets").click()
    expect(page).to_have_url(job.url)
    expect(page.locator("td[data-slug=PBMC_day_0]").locator("xpath=..")).to_contain_text("stage")
    page.get_by_role("link", name="PBMC day 7 – Müller lab").click()
    n_b = select_only(frame, "louvain", "c2", 300)
    create_category(frame, "region")
    label_selection(frame, "region", "left", n_b)
    wait_until_saved(frame, 0)
    # The second dataset has its own category only.
    expect(page.get_by_test_id("stage:category-label")).to_have_count(0)
    watch.assert_clean(frame, "the second dataset's viewer")

    # And back to the first: its category and label counts are still there.
    page.get_by_role("link", name="All datasets").click()
    # The page's own height: the picture for the README without an empty window below.
    page.locator("body").screenshot(path=str(SHOTS / "03-landing-after-work.png"))
    if os.environ.get("GALAXY_CELLXGENE_DOCS_IMG") == "1":
        DOCS_IMG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHOTS / "03-landing-after-work.png", DOCS_IMG)
    page.get_by_role("link", name="PBMC day 0").click()
    expect(page.get_by_test_id("stage:category-label")).to_be_visible()
    expect(page.get_by_test_id("region:category-label")).to_have_count(0)
    if not page.get_by_test_id("categorical-value-count-stage-early").is_visible():
        page.get_by_test_id("stage:category-expand").click()
    expect(page.get_by_test_id("categorical-value-count-stage-early")).to_have_text(str(n_a))
    assert runtime_status(frame)["categories"] == ["stage"]
    watch.assert_clean(frame, "the first dataset's viewer, reopened")

    # Finish from the landing page: every opened dataset gets its merged h5ad.
    page.get_by_role("link", name="All datasets").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Finish and save to Galaxy").click()
    expect(page.locator("#done")).to_be_visible()
    assert job.wait(60) == 0

    labels_a = read_labels(job.annotations_dir / "PBMC_day_0.csv")
    labels_b = read_labels(job.annotations_dir / "PBMC_day_7_Muller_lab.csv")
    assert list(labels_a.columns) == ["stage"] and (labels_a["stage"] == "early").sum() == n_a
    assert list(labels_b.columns) == ["region"] and (labels_b["region"] == "left").sum() == n_b
    merged = ad.read_h5ad(job.merged_dir / "PBMC_day_7_Muller_lab.h5ad")
    assert (merged.obs["region"].astype(str) == "left").sum() == n_b
    assert sorted(p.name for p in job.merged_dir.glob("*.h5ad")) == ["PBMC_day_0.h5ad", "PBMC_day_7_Muller_lab.h5ad"]
    assert not (job.annotations_dir / "reference_atlas.csv").exists()


def test_a_list_viewer_has_the_galaxy_controls_under_its_prefix(
    page: Any, many: Any, galaxy_stand_in: Any, tmp_path: Path
) -> None:
    """Issue 26: export.js, subset.js and finish.js work in a list viewer (their relative routes under
    <entry point>/d/<slug>/) beside multi.js's "All datasets"; Galaxy is the stand-in of
    support/galaxy_stand_in.py, the browser carries the owner's Galaxy session as a cookie."""
    from playwright.sync_api import expect
    from support.cellxgene_ui import create_category, label_selection, pick_subset, select_only, wait_until_saved
    from support.galaxy_stand_in import SESSION, galaxy_env

    env = {**galaxy_env(galaxy_stand_in, staged=False), ENV_NAME: PREFIX}
    job = many(None, "--subsets-dir", "subsets", env=env)
    origin = job.url.rstrip("/")
    job.url = job.url + PREFIX.lstrip("/") + "/"
    page.context.add_cookies([{"name": "galaxysession", "value": SESSION, "url": origin + "/"}])
    watch = PageWatch(page, lambda url: url.startswith(origin))
    frame = page.main_frame
    page.goto(job.url + "d/day0/")
    for control in ("All datasets", "Export to Galaxy", "New dataset from cells"):
        expect(page.get_by_text(control, exact=True)).to_be_visible()

    n = select_only(frame, "louvain", "c1", 220)
    create_category(frame, "stage")
    label_selection(frame, "stage", "early", n)
    wait_until_saved(frame, 0)
    pick_subset(frame, "stage", ["early"], "#galaxy-cellxgene-subset-now")
    title = f"cellxgene on day0: early ({n} cells)"
    expect(page.get_by_test_id("galaxy-subset-status")).to_contain_text(f"In your Galaxy history: #1 {title}")
    pick_subset(frame, "louvain", ["c2"], "#galaxy-cellxgene-subset-finish")
    expect(page.get_by_test_id("galaxy-subset-status")).to_contain_text("Will be saved at Finish")
    page.get_by_test_id("galaxy-export").click()
    expect(page.get_by_test_id("galaxy-export-status")).to_contain_text("Added to your Galaxy history", timeout=60_000)
    page.screenshot(path=str(SHOTS / "11-galaxy-controls.png"))
    names = [name for upload in galaxy_stand_in.uploads for name in upload["names"]]
    assert names[0] == title and names[1].startswith("day0: cellxgene annotations (exported "), names
    watch.assert_clean(frame, "a list viewer with its Galaxy controls")

    page.get_by_role("link", name="All datasets").click()
    expect(page).to_have_url(job.url)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Finish and save to Galaxy").click()
    expect(page.locator("#done")).to_be_visible()
    assert job.wait(60) == 0
    assert [p.name for p in job.subsets_dir.iterdir()] == ["day0+c2.h5ad"]
    assert set(ad.read_h5ad(job.subsets_dir / "day0+c2.h5ad").obs["louvain"].astype(str)) == {"c2"}
