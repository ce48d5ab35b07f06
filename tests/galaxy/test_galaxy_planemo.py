"""Issue 3, test 1: every tool's <tests> pass in a real Galaxy, run by planemo.

planemo's external_galaxy engine reads the tests from the SERVER's copy of each tool; the
local Galaxy loads them from this working tree (scripts/galaxy/tool_conf.xml.in), so what
passes here is what is in tools/cellxgene. planemo comes from scripts/planemo.sh (its own
pinned venv).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from support.galaxy_fixture import ROOT, LocalGalaxy

pytestmark = [pytest.mark.galaxy, pytest.mark.slow]

TOOLS = sorted(p for p in (ROOT / "tools" / "cellxgene").glob("*.xml") if p.name != "macros.xml")


def count_tests(tool: Path) -> int:
    return len(re.findall(r"<test[\s>]", tool.read_text()))


@pytest.mark.timeout(1500)
def test_planemo_test_passes_for_every_tool(galaxy: LocalGalaxy, tmp_path: Path) -> None:
    assert TOOLS, "no tool XML in tools/cellxgene"
    report = tmp_path / "planemo.json"
    command = [
        "bash",
        str(ROOT / "scripts" / "planemo.sh"),
        "test",
        "--engine",
        "external_galaxy",
        "--galaxy_url",
        galaxy.url,
        "--galaxy_admin_key",
        galaxy.admin_key,
        "--galaxy_user_key",
        galaxy.user_key,
        "--test_data",
        str(ROOT / "test-data"),
        "--test_output",
        str(tmp_path / "planemo.html"),
        "--test_output_json",
        str(report),
        *map(str, TOOLS),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1400, cwd=tmp_path, check=False)
    log = (result.stdout + result.stderr)[-6000:]
    assert report.exists(), f"planemo wrote no report (exit {result.returncode}):\n{log}"
    tests = json.loads(report.read_text())["tests"]
    failed = [t["id"] for t in tests if t["data"]["status"] != "success"]
    assert not failed, f"planemo test failed: {failed}\n{log}"
    # Every <test> of every tool ran: none skipped because a tool failed to load.
    assert len(tests) == sum(count_tests(tool) for tool in TOOLS), [t["id"] for t in tests]
    assert result.returncode == 0, log
