"""The tool's container image, built once per test run, and a way to run it as Galaxy does.

`built_image` runs scripts/build-image.sh (podman, the real containers/Dockerfile; layer
cache makes an unchanged rebuild take seconds). With GALAXY_CELLXGENE_IMAGE_REUSE=1 an
existing tag is used as it is (CI builds it in its own step first, to time it apart).

`GalaxyContainerJob` reproduces what Galaxy's Docker destination does for an interactive
tool: a job directory (working/, outputs/, tool_script.sh) owned by the job's user,
`run IMAGE /bin/sh tool_script.sh` with `--user UID:GID`, the job directory and the tool
folder mounted, the input dataset mounted read-only under its `.dat` name, and the
declared port published (here on loopback, on a port the engine picks).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from galaxy_cellxgene_testkit.health import healthy, wait_until
from galaxy_cellxgene_testkit.jobs import DECLARED_PORT, TOOL_DIR, Job, registered_url
from galaxy_cellxgene_testkit.jobs import REPO as ROOT

DEFAULT_IMAGE = "quay.io/galaxy-cellxgene/cellxgene-galaxy:1.3.0--galaxy0"
IMAGE = os.environ.get("GALAXY_CELLXGENE_IMAGE", DEFAULT_IMAGE)
# A Galaxy user id that does not exist in the image, as on a real Galaxy server.
JOB_UID = 1234


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="session")
def built_image() -> str:
    """The image's name:tag, built (or found, with GALAXY_CELLXGENE_IMAGE_REUSE=1) once per run."""
    reuse = os.environ.get("GALAXY_CELLXGENE_IMAGE_REUSE") == "1"
    if reuse and shutil.which("podman") and podman("image", "exists", IMAGE, check=False).returncode == 0:
        return IMAGE
    result = subprocess.run(
        [str(ROOT / "scripts" / "build-image.sh")],
        env={**os.environ, "IMAGE": IMAGE},
        capture_output=True,
        text=True,
        timeout=1500,
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/build-image.sh failed ({result.returncode}):\n{result.stderr[-6000:]}")
    return IMAGE


@dataclass
class GalaxyContainerJob(Job):
    """A job of Galaxy's Docker destination: `podman run` is proc, the container is `name`."""

    name: str = ""

    @property
    def outputs(self) -> Path:
        return self.job_dir / "outputs"

    def send(self, sig: int) -> None:
        """Signal the container's processes, as the engine's kill does."""
        podman("kill", "--signal", str(int(sig)), self.name, check=False)

    def exec(self, *argv: str) -> str:
        return podman("exec", self.name, *argv).stdout

    def remove(self) -> None:
        """Teardown of this one container (by name), then of the `podman run` we started."""
        if self.proc.poll() is None:
            podman("rm", "--force", "--time", "0", self.name, check=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        if self.proc.poll() is None:
            self.proc.kill()


def make_job_dir(base: Path, dataset: Path) -> tuple[Path, Path]:
    """A Galaxy-like job directory and a files/ store holding the dataset as `dataset_1.dat`."""
    files = base / "files"
    files.mkdir(parents=True, exist_ok=True)
    stored = files / "dataset_1.dat"
    shutil.copyfile(dataset, stored)
    job_dir = base / "jobs" / "1"
    (job_dir / "working").mkdir(parents=True)
    (job_dir / "outputs").mkdir()
    (job_dir / "tmp").mkdir()
    return job_dir, stored


# macros.xml's @RUNTIME@: the mounted tool folder first on PYTHONPATH, then the image's python3.
RUNTIME = f'PYTHONPATH={shlex.quote(str(TOOL_DIR))}${{PYTHONPATH:+":$PYTHONPATH"}} python3 -m galaxy_cellxgene'


def view_command(*extra: str, exec_server: bool = False) -> str:
    """The command tools/cellxgene/cellxgene.xml renders in `view` mode, as a template
    for start_galaxy_job ({input} and {outputs} are filled in there). exec_server: the
    job shell replaces itself with the server (`VAR=... exec python3 ...`), so a SIGTERM
    from the container's init reaches the server with no shell in between."""
    parts = [
        "--annotations-out",
        "{outputs}/galaxy_dataset_annotations.dat",
        "--gene-sets-out",
        "{outputs}/galaxy_dataset_gene_sets.dat",
        "--merged-out",
        "merged/annotated.h5ad",
        "--port",
        str(DECLARED_PORT),
        "--idle-timeout",
        "120",
        "--work-dir",
        "cellxgene_work",
        *(shlex.quote(arg) for arg in extra),
    ]
    runtime = "{runtime_exec}" if exec_server else "{runtime}"
    return f"mkdir -p merged && {runtime} view {{input}} " + " ".join(parts)


def start_galaxy_job(
    image: str,
    base: Path,
    dataset: Path,
    name: str,
    command: str | None = None,
    uid: int = JOB_UID,
    ready_timeout: float = 180,
    wait_ready: bool = True,
    host_network: bool = False,
    env: dict[str, str] | None = None,
) -> GalaxyContainerJob:
    """Docker-destination style by default (bridge network, the declared port published).
    host_network=True is what Singularity/Apptainer gives a job: the host's network and no
    port mapping; the runtime must then pick a port and write container_runtime.json."""
    job_dir, stored = make_job_dir(base, dataset)
    script = job_dir / "tool_script.sh"
    # Galaxy's job script: cd into working/ (docker's -w does that too), then the command.
    body = (command or view_command()).format(
        input=shlex.quote(str(stored)),
        outputs=shlex.quote(str(job_dir / "outputs")),
        runtime=RUNTIME,
        runtime_exec=RUNTIME.replace(" python3 ", " exec python3 "),
    )
    script.write_text(f"#!/bin/sh\nset -e\ncd {shlex.quote(str(job_dir / 'working'))}\n{body}\n")
    # Galaxy's jobs belong to the Galaxy user, never to root; so do ours.
    for path in [job_dir.parent, *job_dir.rglob("*"), job_dir]:
        os.chown(path, uid, uid)
    log_path = base / f"{name}.log"
    argv = [
        "podman",
        "run",
        "--rm",
        "--name",
        name,
        "--user",
        f"{uid}:{uid}",
        *(arg for volume in job_volumes(job_dir, stored.parent, host_network) for arg in ("--volume", volume)),
        "--workdir",
        str(job_dir / "working"),
        *(["--network", "host"] if host_network else ["--publish", f"127.0.0.1::{DECLARED_PORT}"]),
        *(arg for key, value in (env or {}).items() for arg in ("--env", f"{key}={value}")),
        "--cpus",
        "1",
        image,
        "/bin/sh",
        str(script),
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    job = GalaxyContainerJob(proc, job_dir, log_path, name=name)
    if not wait_ready:
        return job
    try:
        if host_network:
            job.url = wait_until(lambda: registered_url(job_dir), ready_timeout, "container_runtime.json", proc)
        else:
            port = wait_until(lambda: published_port(name), 60, "the published port", proc)
            job.url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: healthy(job.url), ready_timeout, "/health", proc)
    except AssertionError as err:
        job.remove()
        raise AssertionError(f"{err}\n--- container log ---\n{job.log}") from None
    return job


def job_volumes(job_dir: Path, files: Path, singularity_style: bool) -> list[str]:
    """Galaxy's `$defaults` volumes (galaxy.tool_util.deps.container_classes): the job
    directory read-only with outputs/ and working/ writable, the job's tmp as /tmp. The
    Singularity style mounts the job directory writable, as docs/container.md tells admins
    to, so the runtime can write container_runtime.json there. Datasets are mounted
    read-only here (stricter than Galaxy's default) to prove the input is never written."""
    tmp = job_dir / "tmp"
    volumes = [f"{tmp}:{tmp}:rw", f"{tmp}:/tmp:rw", f"{TOOL_DIR}:{TOOL_DIR}:ro", f"{files}:{files}:ro"]
    if singularity_style:
        return [*volumes, f"{job_dir}:{job_dir}:rw"]
    outputs, working = job_dir / "outputs", job_dir / "working"
    return [*volumes, f"{job_dir}:{job_dir}:ro", f"{outputs}:{outputs}:rw", f"{working}:{working}:rw"]


def published_port(name: str) -> int | None:
    result = podman("port", name, f"{DECLARED_PORT}/tcp", check=False, timeout=30)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    return int(result.stdout.strip().splitlines()[0].rsplit(":", 1)[1])


@pytest.fixture
def galaxy_container_job(built_image: str, tmp_path: Path) -> Iterator[Callable[..., GalaxyContainerJob]]:
    """Factory: galaxy_container_job(dataset, name, command=None, wait_ready=True, ...).

    `command` is the job's command with {runtime}, {input} and {outputs} placeholders;
    the default is the tool's `view` command (view_command())."""
    jobs: list[GalaxyContainerJob] = []

    def start(dataset: Path, name: str, **kwargs) -> GalaxyContainerJob:
        job = start_galaxy_job(built_image, tmp_path / name, dataset, f"gxcx-test-{os.getpid()}-{name}", **kwargs)
        jobs.append(job)
        return job

    yield start
    for job in jobs:
        job.remove()
