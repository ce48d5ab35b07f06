"""The Pulsar destination (issue 15) of the suite's one Galaxy (support.galaxy_fixture).

scripts/galaxy.sh (GALAXY_CELLXGENE_DESTINATION=by-user) starts scripts/pulsar.sh's server
(pulsar-app 0.16.0, its own staging directory, no shared file system) beside Galaxy, on GALAXY_PORT+3,
and sends the cellxgene jobs of the `pulsar` user there; the tool runs in the project's image with
podman.
"""

from __future__ import annotations

import pytest

from support.galaxy_fixture import STATE, LocalGalaxy, destination_user

# scripts/galaxy.sh's PULSAR_STATE: <Galaxy state>/pulsar.
PULSAR_STAGING = STATE / "pulsar" / "staging"


@pytest.fixture(scope="session")
def galaxy_pulsar(galaxy: LocalGalaxy, built_image: str) -> LocalGalaxy:
    """The suite's Galaxy as the user whose cellxgene jobs run on Pulsar."""
    return destination_user(galaxy, "pulsar")
