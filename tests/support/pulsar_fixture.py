"""A third local Galaxy whose cellxgene tools run on a Pulsar REST server (issue 15).

`GALAXY_CELLXGENE_DESTINATION=pulsar` makes scripts/galaxy.sh start scripts/pulsar.sh's server
(pulsar-app 0.16.0, its own staging directory, no shared file system) beside Galaxy and send
every cellxgene tool there; the tool runs in the project's image with podman. Same installation
as the other Galaxies, its own state folder and ports (GALAXY_PULSAR_PORT, else GALAXY_PORT+40;
Pulsar on that +3).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.galaxy_fixture import ROOT, LocalGalaxy, galaxy_beside

PULSAR_GALAXY_STATE = Path(os.environ.get("GALAXY_PULSAR_STATE") or ROOT / ".galaxy-pulsar")
PULSAR_GALAXY_PORT = int(os.environ.get("GALAXY_PULSAR_PORT") or int(os.environ.get("GALAXY_PORT") or 8080) + 40)
PULSAR_STAGING = PULSAR_GALAXY_STATE / "pulsar" / "staging"


@pytest.fixture(scope="session")
def galaxy_pulsar(tmp_path_factory: pytest.TempPathFactory, built_image: str) -> Iterator[LocalGalaxy]:
    """A local Galaxy with the `pulsar` destination for every cellxgene tool (and its Pulsar)."""
    log = tmp_path_factory.mktemp("galaxy-pulsar") / "galaxy-start.log"
    with galaxy_beside(
        PULSAR_GALAXY_STATE,
        PULSAR_GALAXY_PORT,
        {"GALAXY_CELLXGENE_DESTINATION": "pulsar"},
        log,
        check=lambda c: c.get("destination") == "pulsar",
        drop=("PULSAR_PORT", "PULSAR_STATE"),  # scripts/galaxy.sh derives them from the state and port
    ) as credentials:
        yield LocalGalaxy(credentials)
