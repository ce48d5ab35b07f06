"""Start the runtime the way a Galaxy job does, and wait until it says where it listens.

The job: a job directory with `working/` as the current directory, `python -m galaxy_cellxgene`
with the tool folder on PYTHONPATH (what the tool XML's @RUNTIME@ token does), its own session
(signals reach the whole group, as Galaxy's job script does), stdout and stderr in `runtime.log`.
Ready: the runtime has written `../container_runtime.json` (the file Galaxy's job runner reads to
configure the proxy) and `/health` answers there. Never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from galaxy_cellxgene_testkit.health import healthy, wait_until

REPO = Path(__file__).resolve().parents[3]
TOOL_DIR = REPO / "tools" / "cellxgene"
TEST_DATA = REPO / "test-data"
DEMO = TEST_DATA / "pbmc_demo.h5ad"
REGISTRATION = "container_runtime.json"
DECLARED_PORT = 8888  # the tool XMLs' <port>
# A test process may run inside the image: the runtime it starts is a local job all the same.
CONTAINER_ENV = ("GALAXY_CELLXGENE_IN_CONTAINER",)

if not (TOOL_DIR / "galaxy_cellxgene").is_dir():
    raise ImportError(
        f"{__name__} must run from a checkout ({TOOL_DIR} is missing): install it editable, "
        "as scripts/setup-venv.sh does (pip install -e testkit)"
    )


@dataclass
class Job:
    """One runtime process in its job directory; `url` is set once it is ready."""

    proc: subprocess.Popen
    job_dir: Path
    log_path: Path
    url: str = ""

    @property
    def working(self) -> Path:
        return self.job_dir / "working"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def send(self, sig: int) -> None:
        """Signal the job's process group, as Galaxy's Stop does."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout=timeout)


J = TypeVar("J", bound=Job)


def new_job_dir(parent: Path, outputs: bool = True) -> Path:
    """parent/jobN with working/ (and outputs/, where the single tool's datasets live)."""
    job_dir = parent / f"job{len(list(parent.glob('job*')))}"
    (job_dir / "working").mkdir(parents=True)
    if outputs:
        (job_dir / "outputs").mkdir()
    return job_dir


def runtime_env(
    env: Mapping[str, str] | None = None, drop: Sequence[str] = CONTAINER_ENV, tool_dir: Path = TOOL_DIR
) -> dict[str, str]:
    """This process's environment without `drop`, the tool folder as PYTHONPATH, then `env`."""
    inherited = {key: value for key, value in os.environ.items() if key not in drop}
    return {**inherited, "PYTHONPATH": str(tool_dir), **(env or {})}


def launch(job_dir: Path, args: Sequence[str], env: Mapping[str, str] | None = None, kind: type[J] = Job) -> J:
    """Run `python -m galaxy_cellxgene ARGS` in job_dir/working; env: the whole environment
    (default runtime_env()); kind: the Job class to return (a subclass adds a tool's outputs)."""
    log_path = job_dir / "runtime.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "galaxy_cellxgene", *args],
            cwd=job_dir / "working",
            env=dict(env) if env is not None else runtime_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # like Galaxy's job script: signals go to the group
        )
    return kind(proc, job_dir, log_path)


def registration(job_dir: Path) -> dict | None:
    """The entry Galaxy's runner would read from <job>/container_runtime.json (None before it exists)."""
    path = job_dir / REGISTRATION
    if not path.exists():
        return None
    return json.loads(path.read_text())[str(DECLARED_PORT)]


def registered_url(job_dir: Path) -> str | None:
    entry = registration(job_dir)
    return f"http://{entry['host']}:{entry['port']}/" if entry else None


def wait_ready(job: Job, timeout: float = 120, health_timeout: float = 30) -> str:
    """Wait for the registration, then /health; on failure kill the job and raise with its log."""
    try:
        url = wait_until(lambda: registered_url(job.job_dir), timeout, REGISTRATION, job.proc)
        wait_until(lambda: healthy(url), health_timeout, "/health", job.proc)
    except AssertionError as err:
        job.send(signal.SIGKILL)
        raise AssertionError(f"{err}\n--- runtime log ---\n{job.log}") from None
    job.url = url
    return url
