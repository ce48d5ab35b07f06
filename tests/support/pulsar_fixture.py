"""A third local Galaxy whose cellxgene tools run on a Pulsar REST server (issue 15).

`GALAXY_CELLXGENE_DESTINATION=pulsar` makes scripts/galaxy.sh start scripts/pulsar.sh's server
(pulsar-app 0.16.0, its own staging directory, no shared file system) beside Galaxy and send
every cellxgene tool there; the tool runs in the project's image with podman. Same installation
as the other Galaxies, its own state folder and ports (GALAXY_PULSAR_PORT, else GALAXY_PORT+40;
Pulsar on that +3).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.galaxy_fixture import GALAXY_SH, ROOT, LocalGalaxy, start_or_reuse

PULSAR_GALAXY_STATE = Path(os.environ.get("GALAXY_PULSAR_STATE") or ROOT / ".galaxy-pulsar")
PULSAR_GALAXY_PORT = int(os.environ.get("GALAXY_PULSAR_PORT") or int(os.environ.get("GALAXY_PORT") or 8080) + 40)
PULSAR_STAGING = PULSAR_GALAXY_STATE / "pulsar" / "staging"


@pytest.fixture(scope="session")
def galaxy_pulsar(tmp_path_factory: pytest.TempPathFactory, built_image: str) -> Iterator[LocalGalaxy]:
    """A local Galaxy with the `pulsar` destination for every cellxgene tool (and its Pulsar)."""
    env = {
        **os.environ,
        "GALAXY_STATE": str(PULSAR_GALAXY_STATE),
        "GALAXY_PORT": str(PULSAR_GALAXY_PORT),
        "GALAXY_CELLXGENE_DESTINATION": "pulsar",
        "GALAXY_NO_DEMO": "1",
    }
    for name in ("GALAXY_WEB_PORT", "GXIT_PROXY_PORT", "PULSAR_PORT", "PULSAR_STATE"):
        env.pop(name, None)
    log = tmp_path_factory.mktemp("galaxy-pulsar") / "galaxy-start.log"
    credentials, by_us = start_or_reuse(
        PULSAR_GALAXY_STATE / "credentials.json", env, log, check=lambda c: c.get("destination") == "pulsar"
    )
    try:
        yield LocalGalaxy(credentials)
    finally:
        if by_us:
            subprocess.run(["bash", str(GALAXY_SH), "stop"], check=False, timeout=120, env=env)
