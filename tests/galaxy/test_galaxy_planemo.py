"""Issue 3, test 1: every tool's <tests> pass in a real Galaxy, run by planemo.

The runs start as soon as the suite's Galaxy is up (support/planemo_runs.py, from the `galaxy`
fixture) and go on beside the other scenarios; this test waits for each tool's run and reads its
report.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from support import planemo_runs
from support.galaxy_fixture import LocalGalaxy

pytestmark = [pytest.mark.galaxy, pytest.mark.slow]


def count_tests(tool: Path) -> int:
    return len(re.findall(r"<test[\s>]", tool.read_text()))


def problems_of(tool: Path, returncode: int, out: Path) -> list[str]:
    log = (out / "planemo.log").read_text(errors="replace")[-4000:]
    report = out / "planemo.json"
    if not report.exists():
        return [f"{tool.name}: planemo wrote no report (exit {returncode}):\n{log}"]
    tests = json.loads(report.read_text())["tests"]
    failed = [t["id"] for t in tests if t["data"]["status"] != "success"]
    if failed:
        return [f"{tool.name}: planemo test failed: {failed}\n{log}"]
    # Every <test> of the tool ran: none skipped because the tool failed to load.
    if len(tests) != count_tests(tool):
        return [f"{tool.name}: {len(tests)} of {count_tests(tool)} tests ran: {[t['id'] for t in tests]}"]
    return [f"{tool.name}: planemo exit {returncode}\n{log}"] if returncode != 0 else []


@pytest.mark.timeout(1500)
def test_planemo_test_passes_for_every_tool(galaxy: LocalGalaxy, tmp_path: Path) -> None:
    assert planemo_runs.TOOLS, "no tool XML in tools/cellxgene"
    runs = planemo_runs.start(galaxy, tmp_path)  # already running when the fixture started them
    problems = []
    for tool, (proc, out) in runs.items():
        try:
            returncode = proc.wait(timeout=1400)
        except subprocess.TimeoutExpired:
            planemo_runs.stop()
            raise
        problems += problems_of(tool, returncode, out)
    assert not problems, "\n\n".join(problems)
