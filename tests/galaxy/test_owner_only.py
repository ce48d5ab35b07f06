"""Issue 22 items 7 and 9 in a real Galaxy: the viewer answers only the job's owner, and the job
holds no API key.

Both tools run in a real Galaxy 26.1.2 and are reached through its front URL (nginx ->
gx-it-proxy -> the runtime), the way a browser reaches them. Two users: the owner (the demo
user, signed in by the `galaxy` fixture, so testkit sends the owner's `galaxysession` cookie) and
a second user signed in to the same Galaxy. The owner gets the viewer; the second user and a
browser without a session get 403; the second user's label save does not reach the outputs.

The scenarios take the suite's `deployment` (support.deployments): the same bodies run on every
destination and release.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from galaxy_cellxgene_testkit import signed_in
from galaxy_cellxgene_testkit.entry_points import open_viewer, start_viewer
from galaxy_cellxgene_testkit.ui_client import FINISH_HEADERS, UiClient
from support.deployments import Deployment
from support.galaxy_fixture import STATE, LocalGalaxy, poll

pytestmark = [pytest.mark.galaxy, pytest.mark.slow, pytest.mark.timeout(1800)]

MANY_TOOL = "interactive_tool_cellxgene_many"
STRANGER = ("owner-only-stranger@example.org", "stranger-password-2026", "ownerstranger")
ENTRY_POINT_TIMEOUT = 300
JOB_TIMEOUT = 600
PATHS = ("", "api/v0.2/config", "api/v0.2/schema", "galaxy/status")


def stranger_session(galaxy: LocalGalaxy) -> str:
    """A second user, signed in to the same Galaxy in another browser (not remembered by testkit)."""
    galaxy.admin.ensure_user(*STRANGER)
    return galaxy.sign_in(STRANGER[0], STRANGER[1], remember=False)


def assert_only_the_owner(url: str, owner_cookie: str | None, stranger: str) -> None:
    owner = UiClient(url, cookie=owner_cookie)
    assert owner.get("").status_code == 200
    for other in (UiClient(url, cookie=stranger), UiClient(url, signed_in=False)):
        for path in PATHS:
            answer = other.get(path)
            assert answer.status_code == 403, (path, answer.status_code, answer.text[:200])


def assert_no_api_key(deployment: Deployment, job_id: str) -> None:
    """The owner's API key is in no file of the job and no process's argv (Galaxy passes tool
    environment variables to a container as `-e NAME=value` on the `podman run` line)."""
    key = deployment.galaxy.user_key.encode()
    decoded = deployment.galaxy.admin.get(f"configuration/decode/{job_id}")["decoded_id"]
    found = sorted(jobs_root(deployment).glob(f"*/{decoded}"))
    assert len(found) == 1, found
    for path in found[0].rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert key not in path.read_bytes(), f"the API key is in {path}"
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes()
        except OSError:  # the process ended meanwhile
            continue
        assert key not in argv, f"the API key is in the argv of {cmdline.parent.name}"


def jobs_root(deployment: Deployment) -> Path:
    """Galaxy's job_working_directory (on Pulsar, the job's files are Pulsar's staging copy)."""
    state = getattr(getattr(deployment.galaxy, "release", None), "state", STATE)
    return state / "data" / "jobs_directory"


def test_the_viewer_answers_only_its_owner(deployment: Deployment) -> None:
    galaxy = deployment.galaxy
    stranger = stranger_session(galaxy)
    job, outputs = start_viewer(galaxy, deployment.history_id, deployment.demo["id"])
    _, ui = open_viewer(galaxy, job["id"], timeout=ENTRY_POINT_TIMEOUT)
    n = ui.schema()["dataframe"]["nObs"]

    assert_only_the_owner(ui.base_url, galaxy.session_cookie, stranger)
    # The second user's save and Finish are refused; the owner's save lands.
    intruder = UiClient(ui.base_url, cookie=stranger)
    assert intruder.put_labels({"stolen": ["x"] * n}).status_code == 403
    assert intruder.finish().status_code == 403
    assert ui.put_labels({"mine": ["T cell"] * n}).status_code == 200
    assert_no_api_key(deployment, job["id"])

    galaxy.finish_viewer(ui, job["id"], timeout=JOB_TIMEOUT)
    saved = galaxy.labels(outputs["annotations"])
    assert list(saved.columns) == ["mine"]


@pytest.mark.needs("list-tool")
def test_the_list_viewer_answers_only_its_owner(deployment: Deployment) -> None:
    galaxy = deployment.galaxy
    owner = galaxy.session_cookie
    stranger = stranger_session(galaxy)
    elements = [{"name": name, "src": "hda", "id": deployment.demo["id"]} for name in ("first", "second")]
    hdca = galaxy.post(
        "dataset_collections",
        {
            "collection_type": "list",
            "instance_type": "history",
            "history_id": deployment.history_id,
            "name": "owner only",
            "element_identifiers": elements,
        },
    )
    run = galaxy.run_tool(MANY_TOOL, deployment.history_id, {"inputs": {"src": "hdca", "id": hdca["id"]}})
    job, outputs = run["jobs"][0], galaxy.output_ids(run)
    url = galaxy.entry_point_url(galaxy.wait_for_entry_point(job["id"], timeout=ENTRY_POINT_TIMEOUT))
    poll("the landing page through the proxy", lambda: signed_in.get(url, cookie=owner).ok or None, 120)

    assert_only_the_owner(url, owner, stranger)
    viewer = f"{url}d/first/"
    assert_only_the_owner(viewer, owner, stranger)
    n = UiClient(viewer, cookie=owner).schema()["dataframe"]["nObs"]
    assert UiClient(viewer, cookie=stranger).put_labels({"stolen": ["x"] * n}).status_code == 403
    assert (
        signed_in.post(url + "galaxy/finish", headers=FINISH_HEADERS, like="http://nobody.invalid/").status_code == 403
    )
    assert UiClient(viewer, cookie=owner).put_labels({"mine": ["T cell"] * n}).status_code == 200

    finish = signed_in.post(url + "galaxy/finish", headers=FINISH_HEADERS, cookie=owner, timeout=120)
    assert finish.status_code == 200
    assert galaxy.wait_for_job(job["id"], timeout=JOB_TIMEOUT)["state"] == "ok", galaxy.job_stderr(job["id"])
    annotations = galaxy.collection(outputs["annotations"])["elements"]
    assert [e["element_identifier"] for e in annotations] == ["first"]
    text = galaxy.dataset_text(annotations[0]["object"]["id"])
    assert re.search(r"^index,mine\r?$", text, re.MULTILINE) and "stolen" not in text
