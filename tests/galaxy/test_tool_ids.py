"""Issue 14, part 2: this repository's tool beside Galaxy core's own cellxgene 1.1.1.

Galaxy core ships `interactive_tool_cellxgene` 1.1.1 (tools/bundled/interactive/); this
repository's viewer keeps that id (docs/admin.md, "Tool id"). The container Galaxy of the
suite loads core's XML beside the repository's tools (GALAXY_CELLXGENE_CORE_TOOL=1), and
these tests prove what users then see: one panel entry with two versions, ours the default,
and the Visualize plugin's request runs ours.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from support.galaxy_fixture import VIEWER_TOOL, LocalGalaxy

pytestmark = [pytest.mark.galaxy, pytest.mark.container, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "visualizations" / "cellxgene" / "static" / "cellxgene.xml"
OURS = "1.3.0+galaxy0"
CORE = "1.1.1"


def panel_entries(galaxy: LocalGalaxy) -> list[dict[str, Any]]:
    found = []
    for item in galaxy.get("tools", params={"in_panel": "true"}):
        for element in item.get("elems", [item]):
            if "cellxgene" in (element.get("id") or "").lower() + (element.get("name") or "").lower():
                found.append(element)
    return found


def test_core_and_ours_share_one_panel_entry_with_ours_the_default(galaxy_container: LocalGalaxy) -> None:
    tool = galaxy_container.get(f"tools/{VIEWER_TOOL}")
    # Core's 1.1.1 is really loaded (else this proves nothing), as an older version of the same tool.
    assert set(tool["versions"]) >= {OURS, CORE}, tool["versions"]
    assert tool["version"] == OURS, tool["version"]
    entries = [entry for entry in panel_entries(galaxy_container) if entry.get("id") == VIEWER_TOOL]
    assert len(entries) == 1, entries
    assert entries[0]["version"] == OURS


def test_the_visualize_plugin_request_runs_this_repository_tool(galaxy_container: LocalGalaxy) -> None:
    specs = ET.parse(PLUGIN).getroot().find("specs")
    assert specs is not None
    tool_id = specs.findtext("tool_id")
    assert tool_id == VIEWER_TOOL
    # Exactly what index.js POSTs (no version): Galaxy picks the default version of the id.
    history_id = galaxy_container.new_history("tool id check")
    dataset = galaxy_container.upload_test_data(history_id, "pbmc_demo.h5ad", ext="h5ad")
    run = galaxy_container.run_tool(
        tool_id, history_id, {"input": {"src": "hda", "id": dataset["id"]}, "mode|mode_select": "check"}
    )
    job = galaxy_container.wait_for_job(run["jobs"][0]["id"], timeout=600)
    assert job["state"] == "ok", galaxy_container.job_stderr(job["id"])
    # The version the job ran (what "Run this job again" reopens), and ours alone has a report.
    assert galaxy_container.get(f"jobs/{job['id']}/build_for_rerun")["version"] == OURS
    assert list(job["outputs"]) == ["report"], job["outputs"]
