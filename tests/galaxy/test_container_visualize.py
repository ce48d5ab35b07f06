"""Issue 14, part 1: one browser round trip through "Visualize" on the container destination.

The demo user of the container Galaxy (fixture `galaxy_container`) opens Visualize ->
cellxgene on the demo dataset in Debian chromium; the plugin starts the tool, Galaxy runs it
in the image through its own Docker code path, and the viewer renders every cell through
gx-it-proxy; a group of cells labelled in cellxgene's UI lands in the job's annotations
output, and Stop keeps it (tests/browser/visualize_flow.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from browser.visualize_flow import visualize_label_and_stop
from support.galaxy_fixture import LocalGalaxy

pytestmark = [pytest.mark.browser, pytest.mark.galaxy, pytest.mark.container, pytest.mark.slow]

CATEGORY = "container_cell_types"
GROUP = ("louvain", "1", "monocytes_in_a_container")


@pytest.mark.timeout(900)
def test_visualize_in_the_container(galaxy_container: LocalGalaxy, browser_page: Any) -> None:
    job_id = visualize_label_and_stop(galaxy_container, browser_page, CATEGORY, GROUP)
    # Galaxy's own job metrics say where it ran.
    job = galaxy_container.admin.get(f"jobs/{job_id}", params={"full": "true"})
    metrics = {m["name"]: m["raw_value"] for m in job["job_metrics"]}
    assert metrics.get("container_type") == "docker", metrics
