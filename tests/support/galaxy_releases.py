"""Older Galaxy releases (issue 14, part 3): one local Galaxy per release, started in turn.

The tools declare `profile="24.2"`; the suite's Galaxy is the first of
scripts/galaxy/releases.txt (support.galaxy_fixture). The fixture `deployment`
(support.deployments) runs each of the others (the newest 25.x and 24.2.x releases on
PyPI) as a deployment of its own. Each is installed by `GALAXY_VERSION=<v> scripts/galaxy.sh start` into its
own root (.galaxy-<v>, pinned by scripts/galaxy/constraints-<v>.txt) with its own state and
ports, reusing the gx-it-proxy of the 26.1.2 install, and is stopped before the next one
starts (one Galaxy at a time: each holds ~1.2 GB). A release left running by hand with the same
state folder is reused, as the main fixture does.

Ports: GALAXY_RELEASE_PORT (default GALAXY_PORT + 20), then +10 per release.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from support.galaxy_fixture import ROOT, LocalGalaxy


@dataclass(frozen=True)
class Release:
    version: str
    # PyPI's galaxy-web-client (the built web UI) starts at 25.0.1; before it, API only.
    web_client: bool

    @property
    def root(self) -> Path:
        return ROOT / f".galaxy-{self.version}"

    @property
    def state(self) -> Path:
        return self.root / "state"


def read_releases() -> tuple[Release, ...]:
    """scripts/galaxy/releases.txt (the one place release numbers are written), minus its first
    line: that release is the suite's own Galaxy (support.galaxy_fixture)."""
    rows = [
        line.split()
        for line in (ROOT / "scripts" / "galaxy" / "releases.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return tuple(Release(version, web_client=kind == "web-client") for version, kind in rows[1:])


# Newest first; docs/admin.md ("Galaxy releases tested") and README.md list the same.
RELEASES = read_releases()
BY_VERSION = {release.version: release for release in RELEASES}


def release_port(index: int) -> int:
    base = os.environ.get("GALAXY_RELEASE_PORT")
    first = int(base) if base else int(os.environ.get("GALAXY_PORT") or 8080) + 20
    return first + 10 * index


def release_settings(release: Release) -> dict[str, str]:
    settings = {"GALAXY_VERSION": release.version}
    main_proxy = Path(os.environ.get("GALAXY_ROOT") or ROOT / ".galaxy") / "proxy"
    if "GXIT_PROXY_DIR" not in os.environ and (main_proxy / "node_modules").is_dir():
        settings["GXIT_PROXY_DIR"] = str(main_proxy)  # the same gx-it-proxy 0.2.3: no second npm build
    return settings


class ReleaseGalaxy(LocalGalaxy):
    """A LocalGalaxy that knows which release it is and where its state lives."""

    def __init__(self, credentials: dict, release: Release) -> None:
        super().__init__(credentials)
        self.release = release
        self.proxy_map: Path = release.state / "data" / "interactivetools_map.sqlite"
