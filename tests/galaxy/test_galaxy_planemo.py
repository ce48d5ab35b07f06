"""Issue 3, test 1: every tool's <tests> pass in a real Galaxy, run by planemo.

planemo's external_galaxy engine reads the tests from the SERVER's copy of each tool; the
local Galaxy loads them from this working tree (scripts/galaxy/tool_conf.xml.in), so what
passes here is what is in tools/cellxgene. planemo comes from scripts/planemo.sh (its own
pinned venv).

planemo runs one test after another, most of each test spent waiting on Galaxy's job queue
(the Galaxy has 4 local job workers): one planemo per tool, all at once, takes the suite's
wall time from the sum of the tools to about the longest tool alone.
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


def planemo_test(galaxy: LocalGalaxy, tool: Path, out: Path) -> subprocess.Popen:
    """Start `planemo test` on one tool against the running Galaxy; its report is out/planemo.json."""
    out.mkdir(parents=True, exist_ok=True)
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
        str(out / "planemo.html"),
        "--test_output_json",
        str(out / "planemo.json"),
        str(tool),
    ]
    log = (out / "planemo.log").open("w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=out)


@pytest.mark.timeout(1500)
def test_planemo_test_passes_for_every_tool(galaxy: LocalGalaxy, tmp_path: Path) -> None:
    assert TOOLS, "no tool XML in tools/cellxgene"
    runs = {tool: planemo_test(galaxy, tool, tmp_path / tool.stem) for tool in TOOLS}
    problems = []
    for tool, proc in runs.items():
        try:
            returncode = proc.wait(timeout=1400)
        except subprocess.TimeoutExpired:
            for other in runs.values():
                other.kill()
            raise
        out = tmp_path / tool.stem
        log = (out / "planemo.log").read_text(errors="replace")[-4000:]
        report = out / "planemo.json"
        if not report.exists():
            problems.append(f"{tool.name}: planemo wrote no report (exit {returncode}):\n{log}")
            continue
        tests = json.loads(report.read_text())["tests"]
        failed = [t["id"] for t in tests if t["data"]["status"] != "success"]
        if failed:
            problems.append(f"{tool.name}: planemo test failed: {failed}\n{log}")
        # Every <test> of the tool ran: none skipped because the tool failed to load.
        elif len(tests) != count_tests(tool):
            problems.append(f"{tool.name}: {len(tests)} of {count_tests(tool)} tests ran: {[t['id'] for t in tests]}")
        elif returncode != 0:
            problems.append(f"{tool.name}: planemo exit {returncode}\n{log}")
    assert not problems, "\n\n".join(problems)
