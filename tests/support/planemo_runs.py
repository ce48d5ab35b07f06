"""planemo's tool tests (tests/galaxy/test_galaxy_planemo.py), started as soon as the suite's Galaxy
is up and run beside the other scenarios: most of a tool test is waiting on Galaxy's job queue, so
the 21 tests cost the lane little when they overlap the browser round trips instead of following
them (CI: 6.3 min alone, one planemo per tool). The test then only collects their reports.

planemo's external_galaxy engine reads the tests from the SERVER's copy of each tool; the local
Galaxy loads them from this working tree (scripts/galaxy/tool_conf.xml.in), so what passes is
what is in tools/cellxgene. planemo comes from scripts/planemo.sh (its own pinned venv).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = sorted(p for p in (ROOT / "tools" / "cellxgene").glob("*.xml") if p.name != "macros.xml")
TEST_MODULE = "tests/galaxy/test_galaxy_planemo.py"

# tool XML -> (its planemo process, its output folder): one set per pytest session.
_runs: dict[Path, tuple[subprocess.Popen, Path]] = {}


def wanted(session: pytest.Session) -> bool:
    """Whether this session runs the planemo test (so starting it early is worth it)."""
    return any(item.nodeid.startswith(TEST_MODULE) for item in session.items)


def start(galaxy: Any, out: Path) -> dict[Path, tuple[subprocess.Popen, Path]]:
    """Start one `planemo test` per tool against `galaxy` (once per session); the runs."""
    if not _runs:
        for tool in TOOLS:
            folder = out / tool.stem
            _runs[tool] = (_planemo_test(galaxy, tool, folder), folder)
    return _runs


def stop() -> None:
    """Kill runs still going (the session ends early): before the Galaxy they talk to stops."""
    for proc, _ in _runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def _planemo_test(galaxy: Any, tool: Path, out: Path) -> subprocess.Popen:
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
