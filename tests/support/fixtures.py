"""Start the real runtime the way Galaxy does: a job dir, `working/` as cwd, outputs beside it.

The launcher and the readiness wait (container_runtime.json, then /health answering, never a
fixed time) live in galaxy_cellxgene_testkit.jobs; this plugin adds the single tool's output
paths and the fixtures.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from galaxy_cellxgene_testkit.health import healthy, wait_until
from galaxy_cellxgene_testkit.jobs import DEMO, REPO, TEST_DATA, TOOL_DIR, Job, launch, new_job_dir, runtime_env
from galaxy_cellxgene_testkit.jobs import wait_ready as wait_registered
from galaxy_cellxgene_testkit.ui_client import UiClient

ROOT = REPO
__all__ = [
    "DEMO",
    "ROOT",
    "TEST_DATA",
    "TOOL_DIR",
    "RuntimeJob",
    "healthy",
    "runtime_command",
    "start_job",
    "wait_until",
]


# Where the single tool's XML puts its outputs, relative to the job directory.
ANNOTATIONS = Path("outputs", "annotations.dat")
GENE_SETS = Path("outputs", "gene_sets.dat")
MERGED = Path("working", "merged", "merged.h5ad")


@dataclass
class RuntimeJob(Job):
    """A `view` job with the single tool's outputs where the tool XML puts them."""

    client: UiClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = UiClient(self.url) if self.url else None  # type: ignore[assignment]

    @property
    def annotations(self) -> Path:
        return self.job_dir / ANNOTATIONS

    @property
    def gene_sets(self) -> Path:
        return self.job_dir / GENE_SETS

    @property
    def merged(self) -> Path:
        return self.job_dir / MERGED


def view_args(input_path: Path, job_dir: Path, *extra: str) -> list[str]:
    return [
        "view",
        str(input_path),
        "--annotations-out",
        str(job_dir / ANNOTATIONS),
        "--gene-sets-out",
        str(job_dir / GENE_SETS),
        "--merged-out",
        str(job_dir / MERGED),
        *extra,
    ]


def runtime_command(input_path: Path, job_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "galaxy_cellxgene", *view_args(input_path, job_dir, *extra)]


def start_job(
    tmp_path: Path, input_path: Path = DEMO, *extra: str, env: dict | None = None, wait_ready: bool = True
) -> RuntimeJob:
    job_dir = new_job_dir(tmp_path)
    job = launch(job_dir, view_args(input_path, job_dir, *extra), runtime_env(env), RuntimeJob)
    if wait_ready:
        wait_registered(job)
        job.client = UiClient(job.url)
    return job


def kill_jobs(jobs: list) -> None:
    """End the runtime processes a test started (SIGKILL: a test's end is no Finish)."""
    for job in jobs:
        job.send(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            job.wait(10)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Callable[..., RuntimeJob]]:
    """Factory: runtime(input=DEMO, *extra_cli_args, env=None) -> a ready RuntimeJob."""
    jobs: list[RuntimeJob] = []

    def start(input_path: Path = DEMO, *extra: str, env: dict | None = None, wait_ready: bool = True):
        job = start_job(tmp_path, input_path, *extra, env=env, wait_ready=wait_ready)
        jobs.append(job)
        return job

    yield start
    kill_jobs(jobs)


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
