"""Start the real runtime the way Galaxy does: a job dir, `working/` as cwd, outputs beside it.

The fixture waits for the runtime's own readiness signal (container_runtime.json, then
/health answering), never for a fixed time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from support.ui_client import UiClient

ROOT = Path(__file__).resolve().parents[2]
TEST_DATA = ROOT / "test-data"
TOOL_DIR = ROOT / "tools" / "cellxgene"
DEMO = TEST_DATA / "pbmc_demo.h5ad"


@dataclass
class RuntimeJob:
    proc: subprocess.Popen
    job_dir: Path
    annotations: Path
    gene_sets: Path
    merged: Path
    log_path: Path
    url: str = ""
    client: UiClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = UiClient(self.url) if self.url else None  # type: ignore[assignment]

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def send(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout=timeout)


def runtime_command(input_path: Path, job_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "galaxy_cellxgene",
        "view",
        str(input_path),
        "--annotations-out",
        str(job_dir / "outputs" / "annotations.dat"),
        "--gene-sets-out",
        str(job_dir / "outputs" / "gene_sets.dat"),
        "--merged-out",
        str(job_dir / "working" / "merged" / "merged.h5ad"),
        *extra,
    ]


def wait_until(condition: Callable[[], object], timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_job(
    tmp_path: Path, input_path: Path = DEMO, *extra: str, env: dict | None = None, wait_ready: bool = True
) -> RuntimeJob:
    job_dir = tmp_path / f"job{len(list(tmp_path.glob('job*')))}"
    (job_dir / "working").mkdir(parents=True)
    (job_dir / "outputs").mkdir()
    log_path = job_dir / "runtime.log"
    inherited = {k: v for k, v in os.environ.items() if k != "GALAXY_CELLXGENE_IN_CONTAINER"}
    run_env = {**inherited, "PYTHONPATH": str(TOOL_DIR), **(env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            runtime_command(input_path, job_dir, *extra),
            cwd=job_dir / "working",
            env=run_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # like Galaxy's job script: signals go to the group
        )
    job = RuntimeJob(
        proc,
        job_dir,
        job_dir / "outputs" / "annotations.dat",
        job_dir / "outputs" / "gene_sets.dat",
        job_dir / "working" / "merged" / "merged.h5ad",
        log_path,
    )
    if not wait_ready:
        return job
    runtime_json = job_dir / "container_runtime.json"
    try:
        wait_until(runtime_json.exists, 120, "container_runtime.json", proc)
        entry = json.loads(runtime_json.read_text())["8888"]
        job.url = f"http://{entry['host']}:{entry['port']}/"
        job.client = UiClient(job.url)
        wait_until(lambda: healthy(job.url), 30, "/health", proc)
    except AssertionError as err:
        job.send(signal.SIGKILL)
        raise AssertionError(f"{err}\n--- runtime log ---\n{job.log}") from None
    return job


def healthy(url: str) -> bool:
    try:
        return requests.get(url + "health", timeout=2).ok
    except requests.RequestException:
        return False


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Callable[..., RuntimeJob]]:
    """Factory: runtime(input=DEMO, *extra_cli_args, env=None) -> a ready RuntimeJob."""
    jobs: list[RuntimeJob] = []

    def start(input_path: Path = DEMO, *extra: str, env: dict | None = None, wait_ready: bool = True):
        job = start_job(tmp_path, input_path, *extra, env=env, wait_ready=wait_ready)
        jobs.append(job)
        return job

    yield start
    for job in jobs:
        job.send(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            job.wait(10)


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
