"""What a person does in Galaxy 26.1's web client, as Playwright steps."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import Error as PlaywrightError

LAUNCHER_FRAME = "iframe#galaxy_visualization"


def hide_tool_panel(page: Any) -> None:
    """cellxgene needs about 1300 px; the tool panel is not needed to visualize."""
    page.locator("#activity-tools").click()
    page.locator("#toolbox-panel").wait_for(state="hidden")


def open_visualization(page: Any, dataset_id: str, name: str) -> None:
    """Expand the dataset in the history panel, click 'Visualize', pick the plugin by name."""
    item = page.locator(f"#dataset-{dataset_id}")
    item.locator(".content-title").click()
    item.locator("a.visualize-btn").click()
    page.locator(".plugin-list-title", has_text=re.compile(rf"^\s*{re.escape(name)}\s*$")).click()


def launcher(page: Any) -> Any:
    """The plugin's page inside Galaxy's visualization frame."""
    return page.frame_locator(LAUNCHER_FRAME).get_by_test_id("cxg-launcher")


def viewer_frame(page: Any, timeout: float) -> Any:
    """Wait for the launcher to hand over to cellxgene; fail at once with its message if it failed."""
    deadline = time.monotonic() + timeout
    while True:
        for frame in page.frames:
            if "/interactivetool/ep/" in frame.url:
                return frame
        phase, text = _launcher_state(page)
        if phase == "failed":
            raise AssertionError(f"the launcher reports a failure: {text}")
        if time.monotonic() > deadline:
            raise AssertionError(f"cellxgene did not open within {timeout:.0f} s; the launcher says: {text}")
        page.wait_for_timeout(250)


def _launcher_state(page: Any) -> tuple[str | None, str]:
    # The frame may navigate to the viewer between two calls: read without waiting, and
    # treat a vanished launcher as "no news" (the next loop finds the viewer's frame).
    main = launcher(page)
    try:
        if not main.count():
            return None, "(no launcher page)"
        return main.get_attribute("data-phase", timeout=1000), main.inner_text(timeout=1000)
    except PlaywrightError:
        return None, "(the launcher page is navigating)"


def require_plugin(galaxy: Any, name: str, dataset_id: str) -> None:
    """Fail with the fix, not a selector timeout, when Galaxy does not offer the plugin."""
    offered = [plugin["name"] for plugin in galaxy.get("plugins", params={"dataset_id": dataset_id})]
    assert name in offered, (
        f"Galaxy at {galaxy.url} offers {offered} for this dataset, not {name!r}: run "
        "scripts/install-visualization.sh, list its folder in galaxy.yml's visualization_plugins_directory "
        "and restart Galaxy (scripts/galaxy.sh stop; the fixture starts it again)"
    )
