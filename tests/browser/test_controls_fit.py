"""The Galaxy controls box stays clear of cellxgene's embedding selector and plot on laptop and
desktop screens, closed and with "New dataset from cells" open.

The entry point alone: the real runtime served locally (as tests/integration does), opened in
Debian's chromium at each window size. Inside Galaxy's centre panel the same assertion runs in
tests/browser/test_visualize_roundtrip.py and test_subset_roundtrip.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from support.cellxgene_ui import WINDOW_SIZES, assert_controls_clear_of_the_plot, wait_for_cells

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The viewer's frame inside Galaxy's centre panel (tool and history panels open) is narrower than
# cellxgene's page (1240 px at least, so its right sidebar scrolls out of view): about 1000 x 800
# in a 1600 x 900 window, 766 x 680 in a 1366 x 768 one.
FRAMES = [(766, 680), (1000, 800)]
# The demo dataset's cell count (test-data/pbmc_demo.h5ad).
CELLS = 320


@pytest.fixture(scope="module")
def viewer_url(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import contextlib
    import signal
    import subprocess

    from support.fixtures import DEMO, start_job

    job = start_job(tmp_path_factory.mktemp("fit"), DEMO, "--subsets-out", str(tmp_path_factory.mktemp("subsets")))
    yield job.url
    job.send(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        job.wait(10)


@pytest.mark.parametrize(("width", "height"), WINDOW_SIZES + FRAMES, ids=[f"{w}x{h}" for w, h in WINDOW_SIZES + FRAMES])
def test_controls_clear_of_selector_and_plot(chromium: Any, shots: Any, viewer_url: str, width: int, height: int):
    context = chromium.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        page.goto(viewer_url)
        wait_for_cells(page, CELLS, CELLS, timeout=60_000)
        expect(page.locator("#galaxy-cellxgene-finish")).to_be_visible()
        expect(page.locator("#galaxy-cellxgene-subset")).to_be_visible()
        assert_controls_clear_of_the_plot(page)
        shots(page, f"closed-{width}x{height}")

        page.locator("#galaxy-cellxgene-subset").click()
        expect(page.locator("#galaxy-cellxgene-subset-labels input").first).to_be_visible()
        assert_controls_clear_of_the_plot(page)
        # every part of the box is inside the window: nothing of it is cut off
        box = page.locator("#galaxy-cellxgene-controls").bounding_box()
        assert box["x"] >= 0 and box["y"] >= 0, box
        assert box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, box
        shots(page, f"open-{width}x{height}")
    finally:
        context.close()
