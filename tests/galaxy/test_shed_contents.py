"""Issue 14, part 2: what the Tool Shed gets from .shed.yml is everything the tools need.

`planemo shed_build` makes the tarball that `shed_upload` sends; this compares it with the
files git tracks under tools/cellxgene/ and test-data/ (the runtime package, its static
files, every test input). A file added to the repository but not mapped by .shed.yml (a new
subpackage, a new kind of static file) fails here instead of in an admin's Galaxy.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PLANEMO = ROOT / "scripts" / "planemo.sh"
# Where each tracked folder lands in the shed repository (.shed.yml's include mapping).
MAPPING = {"tools/cellxgene/": "", "test-data/": "test-data/"}
# Tracked files that must not be shipped: none are expected; a list keeps the reason visible.
NOT_SHIPPED: set[str] = set()


def tracked() -> set[str]:
    files = subprocess.run(
        ["git", "ls-files", *MAPPING], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    expected = set()
    for name in files:
        for source, target in MAPPING.items():
            if name.startswith(source):
                expected.add(target + name[len(source) :])
    return expected - NOT_SHIPPED


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    work = tmp_path_factory.mktemp("shed")
    # shed_build writes <folder name>.tar.gz beside the folder: build from a copy of the
    # three inputs so the working tree stays clean.
    copy = work / "cellxgene"
    copy.mkdir()
    for name in (".shed.yml", "tools", "test-data"):
        subprocess.run(["cp", "-a", str(ROOT / name), str(copy / name)], check=True)
    result = subprocess.run(
        ["bash", str(PLANEMO), "shed_build", str(copy)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PLANEMO_VENV": os.environ.get("PLANEMO_VENV", str(ROOT / ".cache" / "planemo-venv"))},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with tarfile.open(work / "cellxgene.tar.gz") as archive:
        return {member.name.removeprefix("./") for member in archive.getmembers() if member.isfile()}


def test_every_tracked_tool_file_reaches_the_shed(shipped: set[str]) -> None:
    missing = sorted(tracked() - shipped)
    assert not missing, f".shed.yml does not ship {missing}: add an include for them"


def test_nothing_else_is_shipped(shipped: set[str]) -> None:
    extra = sorted(name for name in shipped - tracked() if "__pycache__" not in name)
    assert not extra, f"the shed tarball holds files git does not track: {extra}"
    assert not [name for name in shipped if "__pycache__" in name or name.endswith(".pyc")]
