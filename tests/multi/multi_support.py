"""Start `view-many` the way Galaxy would, on datasets made in tmp_path.

Like support.fixtures.start_job: a job dir with `working/` as cwd, the per-dataset output
folders inside it (where the tool XML's discover_datasets looks), readiness from the runtime's
own signals (container_runtime.json, then /health), never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import requests
from support.fixtures import TOOL_DIR, healthy, wait_until
from support.multi_data import DATASETS, make_dataset, make_datasets
from support.ui_client import UiClient

__all__ = ["DATASETS", "ManyJob", "make_dataset", "make_datasets", "start_many"]


@dataclass
class ManyJob:
    proc: subprocess.Popen
    job_dir: Path
    log_path: Path
    url: str = ""

    @property
    def working(self) -> Path:
        return self.job_dir / "working"

    @property
    def annotations_dir(self) -> Path:
        return self.working / "annotations"

    @property
    def gene_sets_dir(self) -> Path:
        return self.working / "gene_sets"

    @property
    def merged_dir(self) -> Path:
        return self.working / "merged"

    def galaxy_listing(self) -> dict[str, list[tuple[str, str]]]:
        """galaxy.json as Galaxy reads it: output -> [(element identifier, file name)]."""
        listing = json.loads((self.working / "galaxy.json").read_text(encoding="utf-8"))
        return {name: [(e["name"], e["filename"]) for e in doc["elements"]] for name, doc in listing.items()}

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, slug: str) -> UiClient:
        return UiClient(f"{self.url}d/{slug}/")

    def status(self) -> dict:
        response = requests.get(self.url + "galaxy/status", timeout=30)
        response.raise_for_status()
        return response.json()

    def landing(self) -> str:
        response = requests.get(self.url, timeout=30)
        response.raise_for_status()
        return response.text

    def finish(self) -> dict:
        response = requests.post(self.url + "galaxy/finish", headers={"X-Galaxy-Cellxgene": "finish"}, timeout=120)
        response.raise_for_status()
        return response.json()

    def send(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout=timeout)


def many_command(datasets: dict[str, Path], *extra: str) -> list[str]:
    command = [sys.executable, "-m", "galaxy_cellxgene", "view-many"]  # the tool's own entry point
    for name, path in datasets.items():
        command += ["--dataset", f"{name}={path}"]
    return [
        *command,
        "--annotations-dir",
        "annotations",
        "--gene-sets-dir",
        "gene_sets",
        "--merged-dir",
        "merged",
        "--work-dir",
        "cellxgene_work",
        "--galaxy-json",
        "galaxy.json",
        *extra,
    ]


def start_many(
    tmp_path: Path, datasets: dict[str, Path], *extra: str, wait_ready: bool = True, extra_env: dict | None = None
) -> ManyJob:
    job_dir = tmp_path / f"job{len(list(tmp_path.glob('job*')))}"
    (job_dir / "working").mkdir(parents=True)
    log_path = job_dir / "runtime.log"
    env = {k: v for k, v in os.environ.items() if k not in ("GALAXY_CELLXGENE_IN_CONTAINER", "GALAXY_MEMORY_MB")}
    env["PYTHONPATH"] = str(TOOL_DIR)
    env.update(extra_env or {})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            many_command(datasets, *extra),
            cwd=job_dir / "working",
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    job = ManyJob(proc, job_dir, log_path)
    if not wait_ready:
        return job
    runtime_json = job_dir / "container_runtime.json"
    try:
        wait_until(runtime_json.exists, 120, "container_runtime.json", proc)
        entry = json.loads(runtime_json.read_text())["8888"]
        job.url = f"http://{entry['host']}:{entry['port']}/"
        wait_until(lambda: healthy(job.url), 30, "/health", proc)
    except AssertionError as err:
        job.send(signal.SIGKILL)
        raise AssertionError(f"{err}\n--- runtime log ---\n{job.log}") from None
    return job
