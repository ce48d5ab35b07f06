"""What the tests ask podman about the containers Galaxy or Pulsar started."""

from __future__ import annotations

import subprocess

from galaxy_cellxgene_testkit.galaxy_api import poll


def wait_container_gone(name: str, timeout: float, why: str = "after Stop") -> None:
    """Wait until podman no longer knows the container (`--rm` removes it once it ends)."""

    def gone() -> bool | None:
        result = subprocess.run(["podman", "container", "exists", name], check=False, timeout=60)
        return True if result.returncode != 0 else None

    poll(f"container {name} to be gone {why}", gone, timeout)
