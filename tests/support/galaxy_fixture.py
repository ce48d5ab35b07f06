"""One local Galaxy (scripts/galaxy.sh) shared by every test marked `galaxy`.

The session fixture `galaxy` reuses a Galaxy that already answers with the credentials in
.galaxy/credentials.json (for example one left running by `scripts/galaxy.sh up` or
`start`), and otherwise starts one with `scripts/galaxy.sh start` and stops it at the end of
the run. Tools are loaded when Galaxy starts: after editing a tool XML, stop the running
Galaxy (`scripts/galaxy.sh stop`) so the next run loads the new copy.

Register with `pytest_plugins = ["support.galaxy_fixture"]` in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from galaxy_cellxgene_testkit.galaxy_api import GalaxyApi, poll  # noqa: F401 (poll: the tests import it from here)

from support import planemo_runs

ROOT = Path(__file__).resolve().parents[2]
GALAXY_SH = ROOT / "scripts" / "galaxy.sh"
# The same place scripts/galaxy.sh keeps them (GALAXY_STATE, else GALAXY_ROOT, else .galaxy).
CREDENTIALS = (
    Path(os.environ.get("GALAXY_STATE") or os.environ.get("GALAXY_ROOT") or ROOT / ".galaxy") / "credentials.json"
)
TEST_DATA = ROOT / "test-data"
VIEWER_TOOL = "interactive_tool_cellxgene"
MERGE_TOOL = "cellxgene_merge_annotations"


class LocalGalaxy(GalaxyApi):
    """The demo user's API (what a Galaxy user can do), plus an admin API and the credentials."""

    def __init__(self, credentials: dict[str, Any]) -> None:
        super().__init__(credentials["url"], credentials["user_key"])
        self.credentials = credentials
        self.admin_key: str = credentials["admin_key"]
        self.user_key: str = credentials["user_key"]
        self.admin = GalaxyApi(self.url, self.admin_key)
        # The viewer answers only its owner's Galaxy session (owner_gate.py): sign in as a browser
        # would, so every UiClient on this Galaxy's origin sends the demo user's cookie.
        # Only the demo user's session becomes the origin's default (signed_in.py): the destination
        # users of the same Galaxy pass theirs explicitly (open_viewer, cookie=session_cookie).
        # (scripts/galaxy.sh writes its own "destination", the Galaxy's mode: "by-user" for the suite's.)
        demo = "destination_user" not in credentials
        self.session_cookie: str = self.sign_in(credentials["user_email"], credentials["user_password"], remember=demo)
        # gx-it-proxy's routes (galaxy.yml's interactivetools_map, scripts/galaxy/galaxy.yml.in).
        self.proxy_map = CREDENTIALS.parent / "data" / "interactivetools_map.sqlite"

    def labels(self, dataset_id: str) -> Any:
        """A labels CSV output, once Galaxy has it, as pandas reads it (see read_labels_csv)."""
        return read_labels_csv(self.dataset_text(self.wait_for_dataset(dataset_id)["id"]))

    def finish_viewer(self, ui: Any, job_id: str, timeout: float = 600) -> dict[str, Any]:
        """The Finish button: the viewer writes its outputs and Galaxy ends the job `ok`."""
        response = ui.finish()
        assert response.status_code == 200, response.text
        job = self.wait_for_job(job_id, timeout=timeout)
        assert job["state"] == "ok", self.job_stderr(job_id)
        return job

    def upload_test_data(self, history_id: str, name: str, ext: str = "auto") -> dict[str, Any]:
        """Upload test-data/<name> into the history and wait until it is ok (metadata set)."""
        return self.upload_and_wait(history_id, TEST_DATA / name, name=name, ext=ext)

    def job_stderr(self, job_id: str) -> str:
        job = self.job(job_id, full=True)
        return (job.get("tool_stderr") or "") + (job.get("job_stderr") or "") or job.get("stderr") or ""

    def dataset_text(self, dataset_id: str) -> str:
        return self.dataset_bytes(dataset_id).decode()

    def collection(self, hdca_id: str) -> dict[str, Any]:
        return self.get(f"dataset_collections/{hdca_id}", params={"instance_type": "history"})

    def download(self, dataset_id: str, target: Path) -> Path:
        target.write_bytes(self.dataset_bytes(dataset_id))
        return target

    def output_ids(self, run: dict[str, Any]) -> dict[str, str]:
        """{output name: dataset or collection id} of a run_tool() answer."""
        ids = {output["output_name"]: output["id"] for output in run.get("outputs", [])}
        for collection in run.get("output_collections", []):
            ids[collection["output_name"]] = collection["id"]
        return ids


def _answers(credentials: dict[str, Any]) -> bool:
    """The stored keys work on the stored URL and the viewer tool is loaded."""
    try:
        api = GalaxyApi(credentials["url"], credentials["user_key"], timeout=10)
        return (
            api.request("GET", "whoami").status_code == 200
            and api.request("GET", f"tools/{VIEWER_TOOL}").status_code == 200
        )
    except (requests.ConnectionError, requests.Timeout, KeyError):
        return False


def _stale_tools(credentials_mtime: float) -> list[str]:
    tools = ROOT / "tools" / "cellxgene"
    return [p.name for p in tools.glob("*.xml") if p.stat().st_mtime > credentials_mtime]


def start_or_reuse(
    credentials_path: Path,
    env: dict[str, str],
    log: Path,
    check: Callable[[dict[str, Any]], bool] = lambda _: True,
) -> tuple[dict[str, Any], bool]:
    """Credentials of a Galaxy that answers (reused, or started with `scripts/galaxy.sh start`)."""
    credentials = json.loads(credentials_path.read_text()) if credentials_path.exists() else None
    if credentials is not None and _answers(credentials) and check(credentials):
        stale = _stale_tools(credentials_path.stat().st_mtime)
        if stale:
            # The running Galaxy parsed these before they changed; its tests would be old ones.
            print(f"warning: reusing a Galaxy started before {stale} changed; scripts/galaxy.sh stop reloads")
        return credentials, False
    t0 = time.monotonic()
    with log.open("w") as handle:
        result = subprocess.run(
            ["bash", str(GALAXY_SH), "start"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=1800,
            check=False,
            env=env,
        )
    if result.returncode != 0:
        pytest.fail(f"scripts/galaxy.sh start failed ({result.returncode}):\n{log.read_text()[-4000:]}")
    print(f"local Galaxy started in {time.monotonic() - t0:.0f} s (log: {log})")
    credentials = json.loads(credentials_path.read_text()) if credentials_path.exists() else None
    assert credentials is not None and _answers(credentials), "Galaxy started but does not answer"
    return credentials, True


# One Galaxy for every destination (GALAXY_CELLXGENE_DESTINATION=by-user): the demo user's
# cellxgene jobs run without a container, the `container` user's through Galaxy's own Docker code
# path (podman, the image scripts/build-image.sh builds), the `pulsar` user's on the Pulsar REST
# server scripts/galaxy.sh starts beside it. Galaxy core's cellxgene 1.1.1 is loaded beside ours
# (test_tool_ids.py), and the local Tool Shed of test_toolshed_install.py (started only by that
# test) is one admins can install from.
STATE = CREDENTIALS.parent
TOOLSHED_URL = f"http://127.0.0.1:{os.environ.get('TOOLSHED_PORT') or 9009}/"
SHARED_SETTINGS = {
    "GALAXY_CELLXGENE_DESTINATION": "by-user",
    "GALAXY_CELLXGENE_CORE_TOOL": "1",
    "GALAXY_TOOLSHED_URL": TOOLSHED_URL,
}


@pytest.fixture(scope="session")
def galaxy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGalaxy]:
    """The suite's Galaxy (reused when one answers, else started for the run and stopped after).
    planemo's tool tests start on it at once when the session runs them (support/planemo_runs.py)."""
    log = tmp_path_factory.mktemp("galaxy") / "galaxy-start.log"
    # scripts/galaxy.sh derives Pulsar's port and state from GALAXY_PORT and the Galaxy state.
    env = {name: value for name, value in os.environ.items() if name not in ("PULSAR_PORT", "PULSAR_STATE")}
    credentials, by_us = start_or_reuse(CREDENTIALS, {**env, **SHARED_SETTINGS}, log)
    suite_galaxy = LocalGalaxy(credentials)
    if planemo_runs.wanted(request.session):
        planemo_runs.start(suite_galaxy, tmp_path_factory.mktemp("planemo"))
    try:
        yield suite_galaxy
    finally:
        planemo_runs.stop()
        if by_us:
            subprocess.run(["bash", str(GALAXY_SH), "stop"], check=False, timeout=120, env=env)


def destination_user(galaxy: LocalGalaxy, destination: str) -> LocalGalaxy:
    """The same Galaxy, acting as the user whose cellxgene jobs go to `destination`."""
    user = galaxy.credentials.get("users", {}).get(destination)
    if user is None:
        pytest.fail(
            f"the Galaxy at {galaxy.url} was started without the {destination} destination "
            "(GALAXY_CELLXGENE_DESTINATION=by-user): `scripts/galaxy.sh stop`, and the tests start their own"
        )
    return LocalGalaxy(
        {
            **galaxy.credentials,
            "user_email": user["email"],
            "user_password": user["password"],
            "user_id": user["id"],
            "user_key": user["key"],
            "destination_user": destination,
        }
    )


@pytest.fixture(scope="session")
def galaxy_container(galaxy: LocalGalaxy, built_image: str) -> LocalGalaxy:
    """The suite's Galaxy as the user whose cellxgene jobs run in the container destination."""
    return destination_user(galaxy, "container")


@contextlib.contextmanager
def galaxy_beside(
    state: Path,
    port: int,
    settings: dict[str, str],
    log: Path,
    check: Callable[[dict[str, Any]], bool],
    drop: tuple[str, ...] = (),
) -> Iterator[dict[str, Any]]:
    """Credentials of a Galaxy beside the suite's (an older release): its own state folder and ports
    (GALAXY_PORT and the three after it), `settings` for scripts/galaxy.sh; stopped at the end if
    started here."""
    unwanted = {"GALAXY_WEB_PORT", "GXIT_PROXY_PORT", "PULSAR_PORT", "PULSAR_STATE", *drop}
    env = {name: value for name, value in os.environ.items() if name not in unwanted}
    env.update({"GALAXY_STATE": str(state), "GALAXY_PORT": str(port), "GALAXY_NO_DEMO": "1", **settings})
    credentials, by_us = start_or_reuse(state / "credentials.json", env, log, check=check)
    try:
        yield credentials
    finally:
        if by_us:
            subprocess.run(["bash", str(GALAXY_SH), "stop"], check=False, timeout=120, env=env)


@pytest.fixture(scope="session")
def galaxy_history(galaxy: LocalGalaxy) -> str:
    """One history for the whole run: tests tell their outputs apart by the ids a run returns."""
    return galaxy.new_history(f"pytest {time.strftime('%Y-%m-%d %H:%M:%S')}")


@pytest.fixture(scope="session")
def galaxy_demo(galaxy: LocalGalaxy, galaxy_history: str) -> dict[str, Any]:
    """test-data/pbmc_demo.h5ad uploaded as h5ad (with its metadata: obs_layers, obsm_layers...)."""
    return galaxy.upload_test_data(galaxy_history, "pbmc_demo.h5ad", ext="h5ad")


@pytest.fixture(scope="session")
def galaxy_container_demo(galaxy_container: LocalGalaxy) -> dict[str, Any]:
    """The demo dataset of the container user, in a history of its own (its "history_id")."""
    history_id = galaxy_container.new_history(f"pytest container {time.strftime('%Y-%m-%d %H:%M:%S')}")
    return galaxy_container.upload_test_data(history_id, "pbmc_demo.h5ad", ext="h5ad")


def read_labels_csv(text: str) -> Any:
    """cellxgene's labels CSV as pandas reads it (FIELD_NOTES 1)."""
    import pandas as pd

    return pd.read_csv(io.StringIO(text), comment="#", index_col=0, dtype="category", keep_default_na=False)


def form_options(galaxy: LocalGalaxy, history_id: str, dataset_id: str) -> dict[str, list[str]]:
    """The tool form as Galaxy builds it for this dataset: {select name: option values}."""
    payload = {"history_id": history_id, "inputs": {"input": {"values": [{"src": "hda", "id": dataset_id}]}}}
    form = galaxy.post(f"tools/{VIEWER_TOOL}/build", payload)
    options: dict[str, list[str]] = {}

    def walk(inputs: list[dict[str, Any]]) -> None:
        for item in inputs:
            if item.get("type") == "select":
                options[item["name"]] = [str(o[1]) for o in item.get("options", [])]
            walk(item.get("inputs", []))
            for case in item.get("cases", []):
                walk(case.get("inputs", []))

    walk(form["inputs"])
    return options
