"""Deployments: one scenario body, run on every place admins run the tool (issue 24).

The module-scoped fixture `deployment` is parametrized over DEPLOYMENTS: the suite's one Galaxy
26.1.2 as each destination user (`local`: no container; `container`: Galaxy's Docker code path
with podman; `pulsar`: a Pulsar REST server, no shared file system) and each older release of
scripts/galaxy/releases.txt on a Galaxy of its own (no container). Like Galaxy's own
MulledJobTestCases mixin, a scenario is written once and takes `deployment`:

    @pytest.mark.needs("browser")              # skipped, with the reason, where it cannot run
    def test_something(deployment: Deployment) -> None:
        galaxy = deployment.galaxy             # a LocalGalaxy acting as that deployment's user
        job, outputs = start_viewer(galaxy, deployment.history_id, deployment.demo["id"])

What a deployment cannot do is declared in CANNOT, with the reason, never decided inside a test.
pytest groups the tests of one module by deployment, so an older release's Galaxy is started
once per module that uses it and stopped before the next release starts (one at a time: each
holds ~1.2 GB). A new scenario goes in tests/galaxy/test_deployments.py (or a module of its
own); tests/README.md says how.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pytest

from support.galaxy_fixture import LocalGalaxy, galaxy_beside
from support.galaxy_releases import RELEASES, ReleaseGalaxy, release_port, release_settings

DESTINATIONS = ("local", "container", "pulsar")
DEPLOYMENTS = (*DESTINATIONS, *(release.version for release in RELEASES))
# Markers per deployment: the image (`container`), or a Galaxy of its own (`galaxy_releases`).
MARKS = {
    "container": [pytest.mark.container],
    "pulsar": [pytest.mark.container],
    **{release.version: [pytest.mark.galaxy_releases] for release in RELEASES},
}

# The fixture of each destination of the suite's Galaxy (support.galaxy_fixture, pulsar_fixture).
DESTINATION_FIXTURES = {"local": "galaxy", "container": "galaxy_container", "pulsar": "galaxy_pulsar"}

NO_WEB_CLIENT = (
    "PyPI has no built web client for this release (galaxy-web-client starts at 25.0.1), so Galaxy's "
    "pages cannot load: API only (docs/admin.md, Galaxy releases tested)"
)
ONCE_PER_RELEASE = "the tools' <tests> run once per Galaxy release, on its default destination"
GALAXY_OWN_OUTPUTS = (
    "the job writes Galaxy's own output files, so remote save stays off "
    "(tests/integration/test_remote_save.py::test_galaxy_own_outputs_are_never_uploaded)"
)
RESUME_ONCE = (
    "reading earlier annotations (resume, the merge tool) is the runtime's own step, the same on "
    "every destination: it runs on the newest Galaxy's local destination"
)
OLDER_RELEASE = "older releases run on their default destination, without a container"
LIST_TOOL_ONCE = (
    "the list tool's gates (entry path, owner) are the single viewer's WSGI layers and its job is the "
    "single viewer's job shape: it runs through the proxy on the newest Galaxy's local destination"
)
# capability -> why this deployment lacks it. Capabilities:
#   browser               Galaxy's web client in chromium
#   browser-label-stop    Visualize -> label -> Stop in chromium (this module's short round trip)
#   container-inspection  a job container to inspect
#   staged-outputs        outputs are staged copies, so the runtime pushes saves into the history
#   tool-test-subset      the release's run of some of the tools' <tests>
#   resume                a session resumed from earlier annotations; the merge tool on them
#   list-tool             the list tool (several datasets in one session) through the proxy
CANNOT: dict[str, dict[str, str]] = {
    "local": {
        "browser-label-stop": (
            "the full round trip (label, Export, Finish) runs in tests/browser/test_visualize_roundtrip.py"
        ),
        "container-inspection": "no container: the tool runs in the runtime venv",
        "staged-outputs": GALAXY_OWN_OUTPUTS,
        "tool-test-subset": "the newest release runs every <test> of every tool (test_galaxy_planemo.py)",
    },
    "container": {
        "list-tool": LIST_TOOL_ONCE,
        "staged-outputs": GALAXY_OWN_OUTPUTS,
        "tool-test-subset": ONCE_PER_RELEASE,
        "resume": RESUME_ONCE,
    },
    "pulsar": {
        "list-tool": LIST_TOOL_ONCE,
        "browser-label-stop": (
            "the browser's path (plugin, proxy, viewer) is the container destination's; Pulsar changes "
            "only how the job reaches its node, which the API scenarios cover"
        ),
        "tool-test-subset": ONCE_PER_RELEASE,
        "resume": RESUME_ONCE,
    },
}
for _release in RELEASES:
    CANNOT[_release.version] = {
        "container-inspection": OLDER_RELEASE,
        "list-tool": LIST_TOOL_ONCE,
        "staged-outputs": OLDER_RELEASE,
        "resume": RESUME_ONCE,
    }
    if not _release.web_client:
        CANNOT[_release.version]["browser"] = NO_WEB_CLIENT


@dataclass
class Deployment:
    """One place the tool runs: its Galaxy (as its user), and what it cannot do (with why)."""

    name: str
    galaxy: LocalGalaxy
    cannot: dict[str, str] = field(default_factory=dict)

    def require(self, capability: str) -> None:
        """Skip the calling test on this deployment when it lacks `capability`, with the reason
        (the marker `needs` does the same before any fixture is set up: prefer it)."""
        if capability in self.cannot:
            pytest.skip(f"{self.name}: {self.cannot[capability]}")

    @cached_property
    def history_id(self) -> str:
        """One history per deployment and module: tests tell their outputs apart by ids."""
        return self.galaxy.new_history(f"pytest {self.name} {time.strftime('%H:%M:%S')}")

    @cached_property
    def demo(self) -> dict[str, Any]:
        """test-data/pbmc_demo.h5ad uploaded as h5ad into history_id (metadata set)."""
        return self.galaxy.upload_test_data(self.history_id, "pbmc_demo.h5ad", ext="h5ad")

    @property
    def release(self) -> str:
        """The Galaxy release (26.1.2 for every destination of the suite's Galaxy)."""
        return self.galaxy.release.version if isinstance(self.galaxy, ReleaseGalaxy) else "newest"


def release_galaxy(request: pytest.FixtureRequest, version: str) -> ReleaseGalaxy:
    """The older release's own Galaxy (started here unless one answers), stopped after the module."""
    release = next(r for r in RELEASES if r.version == version)
    log = request.getfixturevalue("tmp_path_factory").mktemp(f"galaxy-{version}") / "galaxy-start.log"
    context = galaxy_beside(
        release.state,
        release_port(RELEASES.index(release)),
        release_settings(release),
        log,
        check=lambda c: str(c.get("galaxy_version")) == ".".join(version.split(".")[:2]),
        drop=("GALAXY_ROOT",),  # each release has its own installation (.galaxy-<version>)
    )
    credentials = context.__enter__()
    request.addfinalizer(lambda: context.__exit__(None, None, None))
    return ReleaseGalaxy(credentials, release)


@pytest.fixture(scope="module", params=[pytest.param(name, marks=MARKS.get(name, ())) for name in DEPLOYMENTS])
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """Each deployment in turn (see the module docstring); the test id names it."""
    name: str = request.param
    if name in DESTINATION_FIXTURES:
        galaxy = request.getfixturevalue(DESTINATION_FIXTURES[name])
    else:
        galaxy = release_galaxy(request, name)
    return Deployment(name, galaxy, CANNOT.get(name, {}))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.needs(capability, ...)`: skip the test on a deployment that lacks one, with
    the reason, before any fixture is set up (so no Galaxy starts for a test that cannot run)."""
    marker = item.get_closest_marker("needs")
    callspec = getattr(item, "callspec", None)
    if marker is None or callspec is None or "deployment" not in callspec.params:
        return
    name = callspec.params["deployment"]
    for capability in marker.args:
        reason = CANNOT.get(name, {}).get(capability)
        if reason:
            pytest.skip(f"{name}: {reason}")
