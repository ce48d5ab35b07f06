"""What a person does in Galaxy 26.1's web client, as Playwright steps."""

from __future__ import annotations

import re
import time
from typing import Any

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
        main = launcher(page)
        if main.count() and main.get_attribute("data-phase") == "failed":
            raise AssertionError(f"the launcher reports a failure: {main.inner_text()}")
        if time.monotonic() > deadline:
            text = main.inner_text() if main.count() else "(no launcher page)"
            raise AssertionError(f"cellxgene did not open within {timeout:.0f} s; the launcher says: {text}")
        page.wait_for_timeout(250)
