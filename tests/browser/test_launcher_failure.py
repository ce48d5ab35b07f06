"""Visualize on a dataset cellxgene cannot show: the launcher says why, in the runtime's words.

Never a bare "Proxy target missing" and never an endless spinner: the job fails fast (exit 2)
and the launcher shows its stderr, which names the problem and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect
from support.browser_fixture import switch_to_history
from support.galaxy_ui import hide_tool_panel, launcher, open_visualization, require_plugin

pytestmark = [pytest.mark.browser, pytest.mark.galaxy, pytest.mark.slow]


def test_a_dataset_without_embedding_shows_the_runtime_message(
    galaxy: Any, galaxy_page: Any, shots: Any, fresh_history: Callable[[str], str]
) -> None:
    page = galaxy_page
    history_id = fresh_history("browser broken dataset")
    broken = galaxy.upload_test_data(history_id, "broken_no_embedding.h5ad", ext="h5ad")
    switch_to_history(page, galaxy.url, history_id)
    hide_tool_panel(page)

    require_plugin(galaxy, "cellxgene", broken["id"])
    open_visualization(page, broken["id"], "cellxgene")
    main = launcher(page)
    expect(main).to_have_attribute("data-phase", "failed", timeout=240_000)
    expect(main.get_by_test_id("cxg-error")).to_contain_text("cellxgene could not start")
    details = main.get_by_test_id("cxg-error-details")
    expect(details).to_contain_text("No embedding cellxgene can draw")
    expect(details).to_contain_text("X_umap")  # the fix, not only the problem
    expect(details).to_contain_text("exit code 2")
    expect(main).not_to_contain_text("Proxy target missing")
    shots(page, "launcher-failed", doc="roundtrip-launcher-failed")
    shots.publish()
