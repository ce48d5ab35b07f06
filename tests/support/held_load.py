"""A view whose cellxgene app is held back deterministically: its `import flask` waits for a file
(hold_flask/sitecustomize.py), so the early front (early_front.py) is the only thing answering
until the test releases it."""

from __future__ import annotations

from pathlib import Path

from galaxy_cellxgene_testkit.jobs import TOOL_DIR

HOLD = Path(__file__).with_name("hold_flask")


def held_env(release: Path, **extra: str) -> dict[str, str]:
    """The environment of a view whose cellxgene waits until `release` exists."""
    return {"PYTHONPATH": f"{HOLD}:{TOOL_DIR}", "GALAXY_CELLXGENE_TEST_RELEASE": str(release), **extra}
