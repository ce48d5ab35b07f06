"""Issue 15: the runtime pushes saves into the history only when its outputs are staged copies.

The real runtime (a subprocess, as Galaxy runs it) talks to a stand-in for Galaxy's API
(support/galaxy_stand_in.py: a real HTTP server on loopback that answers `POST /api/tools/fetch` and
`DELETE /api/histories/{id}/contents/{id}` the way Galaxy 26.1 does and records every request).
A stand-in, because this level has no Galaxy; tests/galaxy/test_deployments.py (its `pulsar`
deployment) runs the same code against a real Galaxy and a real Pulsar.
"""

from __future__ import annotations

import re
import signal
import time
from typing import Any

import pytest
from galaxy_cellxgene_testkit.ui_client import UiClient
from support.fixtures import wait_until
from support.galaxy_stand_in import HISTORY, SESSION, GalaxyStandIn, galaxy_env

pytestmark = pytest.mark.slow

NAME = re.compile(r"^cellxgene on pbmc_demo\.h5ad: cell annotations \(saved at \d\d:\d\d\)$")


def as_owner(job: Any) -> Any:
    """The job's client sends the owner's Galaxy session, as the owner's browser does."""
    job.client = UiClient(job.url, cookie=SESSION)
    return job


def labels(n: int, shift: int = 0) -> list[str]:
    return [["T cell", "B cell", "NK cell"][(i + shift) % 3] for i in range(n)]


def quiet_for(seconds: float, stand_in: GalaxyStandIn, count: int) -> None:
    """Assert that no request beyond `count` arrives during `seconds` (absence has no event to wait on)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert stand_in.requests() == count, (stand_in.uploads, stand_in.deleted)
        time.sleep(0.05)


def test_galaxy_own_outputs_are_never_uploaded(runtime, galaxy_stand_in: GalaxyStandIn) -> None:
    """Local and container destinations: Galaxy's URL, history and owner are there, the flag is not."""
    job = as_owner(runtime(env=galaxy_env(galaxy_stand_in, staged=False)))
    n = job.client.schema()["dataframe"]["nObs"]
    assert job.client.put_labels({"remote_cat": labels(n)}).ok
    quiet_for(3.0, galaxy_stand_in, 0)  # ten times the debounce
    job.send(signal.SIGTERM)
    assert job.wait(30) == 143
    assert galaxy_stand_in.requests() == 0
    assert "staged" not in job.log


def test_staged_outputs_are_pushed_after_a_save_once_and_replaced(runtime, galaxy_stand_in: GalaxyStandIn) -> None:
    job = as_owner(runtime(env=galaxy_env(galaxy_stand_in, staged=True)))
    n = job.client.schema()["dataframe"]["nObs"]
    # Nothing saved yet: the outputs hold the start's (empty) state, which is no news.
    quiet_for(1.5, galaxy_stand_in, 0)

    assert job.client.put_labels({"remote_cat": labels(n)}).ok
    wait_until(lambda: galaxy_stand_in.uploads, 30, "the push after a save", job.proc)
    upload = galaxy_stand_in.uploads[0]
    assert upload["history"] == HISTORY
    assert len(upload["names"]) == 1 and NAME.match(upload["names"][0]), upload["names"]
    pushed = upload["files"][upload["names"][0]]
    assert pushed == job.annotations.read_text(), "the push must carry the saved file"
    assert "remote_cat" in pushed

    # The same labels saved again: new bytes (the header's time), same data: nothing is sent.
    assert job.client.put_labels({"remote_cat": labels(n)}).ok
    quiet_for(2.0, galaxy_stand_in, 1)

    # A real change: a new copy, and the older one is deleted (replaced, not duplicated).
    assert job.client.put_labels({"remote_cat": labels(n, shift=1)}).ok
    wait_until(lambda: len(galaxy_stand_in.deleted) == 1, 30, "the replacement", job.proc)
    assert len(galaxy_stand_in.uploads) == 2
    assert galaxy_stand_in.deleted == ["pushed0"]

    # A clean finish: staging will deliver the outputs, so the pushed copy is withdrawn.
    assert job.client.finish().ok
    assert job.wait(60) == 0
    assert galaxy_stand_in.deleted == ["pushed0", "pushed1"]
    assert len(galaxy_stand_in.uploads) == 2


def test_sigterm_pushes_what_is_unpushed(runtime, galaxy_stand_in: GalaxyStandIn) -> None:
    # A debounce longer than the test: only the SIGTERM path can push.
    job = as_owner(runtime(env=galaxy_env(galaxy_stand_in, staged=True, debounce=600)))
    n = job.client.schema()["dataframe"]["nObs"]
    assert job.client.put_labels({"remote_cat": labels(n, shift=2)}).ok
    quiet_for(1.0, galaxy_stand_in, 0)
    job.send(signal.SIGTERM)
    assert job.wait(30) == 143
    assert len(galaxy_stand_in.uploads) == 1, job.log
    assert NAME.match(galaxy_stand_in.uploads[0]["names"][0])
    assert "remote_cat" in next(iter(galaxy_stand_in.uploads[0]["files"].values()))


def test_sigterm_push_ends_inside_the_grace_period(runtime, galaxy_stand_in: GalaxyStandIn) -> None:
    """A Galaxy slower than the budget: the runtime gives up and exits before a runner's
    SIGKILL (Docker's stop waits 10 s), instead of hanging on the upload."""
    galaxy_stand_in.delay = 30.0
    job = as_owner(runtime(env=galaxy_env(galaxy_stand_in, staged=True, debounce=600)))
    n = job.client.schema()["dataframe"]["nObs"]
    assert job.client.put_labels({"remote_cat": labels(n)}).ok
    started = time.monotonic()
    job.send(signal.SIGTERM)
    assert job.wait(30) == 143
    assert time.monotonic() - started < 8.0, job.log


def test_a_viewer_whose_staging_directory_is_gone_exits(runtime, galaxy_stand_in: GalaxyStandIn) -> None:
    """After Stop on Pulsar the container outlives the SIGKILLed job shell; once Pulsar has
    deleted the job's directory (Galaxy collected it), the runtime ends itself."""
    import shutil

    job = as_owner(runtime(env=galaxy_env(galaxy_stand_in, staged=True)))
    shutil.rmtree(job.annotations.parent)
    assert job.wait(30) == 0
    assert "staging directory is gone" in job.log
    assert galaxy_stand_in.requests() == 0


def test_a_collected_job_drops_the_pushed_copy_its_staged_output_repeats(
    runtime, galaxy_stand_in: GalaxyStandIn
) -> None:
    """REST Pulsar after Stop: Galaxy collected the staged output (the last save) and Pulsar
    deleted the job's directory. The pushed copy holds the same save: it is deleted, and the
    staged output is what the history keeps."""
    import shutil

    job = as_owner(runtime(env=galaxy_env(galaxy_stand_in, staged=True)))
    n = job.client.schema()["dataframe"]["nObs"]
    assert job.client.put_labels({"remote_cat": labels(n)}).ok
    wait_until(lambda: galaxy_stand_in.uploads, 30, "the push after a save", job.proc)
    with galaxy_stand_in.lock:
        galaxy_stand_in.staged["staged0"] = job.annotations.read_bytes()
    shutil.rmtree(job.annotations.parent)
    assert job.wait(60) == 0, job.log
    assert galaxy_stand_in.deleted == ["pushed0"], job.log
    assert "copy deleted" in job.log


def test_an_uncollected_job_keeps_the_pushed_copy(runtime, galaxy_stand_in: GalaxyStandIn) -> None:
    """Message-queue Pulsar skips the staging of a stopped job: no history dataset holds the
    save, so the pushed copy is the only one and stays."""
    import shutil

    env = {**galaxy_env(galaxy_stand_in, staged=True), "GALAXY_CELLXGENE_REMOTE_SAVE_COLLECT_WAIT": "2"}
    job = as_owner(runtime(env=env))
    n = job.client.schema()["dataframe"]["nObs"]
    assert job.client.put_labels({"remote_cat": labels(n, shift=1)}).ok
    wait_until(lambda: galaxy_stand_in.uploads, 30, "the push after a save", job.proc)
    with galaxy_stand_in.lock:  # a dataset of the same size but other content is no match
        galaxy_stand_in.staged["other0"] = bytes(len(job.annotations.read_bytes()))
    shutil.rmtree(job.annotations.parent)
    assert job.wait(60) == 0, job.log
    assert galaxy_stand_in.deleted == [], job.log
