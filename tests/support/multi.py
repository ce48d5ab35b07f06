"""Start `view-many` the way Galaxy would, on datasets made in tmp_path.

With galaxy_cellxgene_testkit.jobs, as support.fixtures.start_job: a job dir with `working/` as
cwd, the per-dataset output folders inside it (where the tool XML's discover_datasets looks),
readiness from the runtime's own signals (container_runtime.json, then /health), never a fixed sleep.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from galaxy_cellxgene_testkit import signed_in
from galaxy_cellxgene_testkit.jobs import Job, launch, new_job_dir, runtime_env
from galaxy_cellxgene_testkit.jobs import wait_ready as wait_registered
from galaxy_cellxgene_testkit.ui_client import UiClient

from support.fixtures import kill_jobs
from support.multi_data import DATASETS, make_dataset, make_datasets

__all__ = ["DATASETS", "ManyJob", "make_dataset", "make_datasets", "many", "start_many"]


@dataclass
class ManyJob(Job):
    @property
    def annotations_dir(self) -> Path:
        return self.working / "annotations"

    @property
    def gene_sets_dir(self) -> Path:
        return self.working / "gene_sets"

    @property
    def merged_dir(self) -> Path:
        return self.working / "merged"

    @property
    def subsets_dir(self) -> Path:
        return self.working / "subsets"

    def galaxy_listing(self) -> dict[str, list[tuple[str, str]]]:
        """galaxy.json as Galaxy reads it: output -> [(element identifier, file name)]."""
        listing = json.loads((self.working / "galaxy.json").read_text(encoding="utf-8"))
        return {name: [(e["name"], e["filename"]) for e in doc["elements"]] for name, doc in listing.items()}

    def client(self, slug: str) -> UiClient:
        return UiClient(f"{self.url}d/{slug}/")

    def status(self) -> dict:
        response = signed_in.get(self.url + "galaxy/status", timeout=30)
        response.raise_for_status()
        return response.json()

    def landing(self) -> str:
        response = signed_in.get(self.url, timeout=30)
        response.raise_for_status()
        return response.text

    def finish(self) -> dict:
        response = signed_in.post(self.url + "galaxy/finish", headers={"X-Galaxy-Cellxgene": "finish"}, timeout=120)
        response.raise_for_status()
        return response.json()


def many_args(datasets: dict[str, Path], *extra: str) -> list[str]:
    command = ["view-many"]  # the tool's own subcommand
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
    job_dir = new_job_dir(tmp_path, outputs=False)
    env = runtime_env(extra_env, drop=("GALAXY_CELLXGENE_IN_CONTAINER", "GALAXY_MEMORY_MB"))
    job = launch(job_dir, many_args(datasets, *extra), env, ManyJob)
    if wait_ready:
        wait_registered(job)
    return job


@pytest.fixture
def many(tmp_path: Path) -> Iterator[Callable[..., ManyJob]]:
    """Start view-many jobs on `datasets` (default: make_datasets); each is killed at the end.
    `env`: more environment (a Galaxy's URL, the owner); every job is forgotten by signed_in."""
    jobs: list[ManyJob] = []

    def start(
        datasets: dict[str, Path] | None = None, *extra: str, wait_ready: bool = True, env: dict | None = None
    ) -> ManyJob:
        datasets = datasets or make_datasets(tmp_path / "data")
        job = start_many(tmp_path, datasets, *extra, wait_ready=wait_ready, extra_env=env)
        jobs.append(job)
        return job

    yield start
    kill_jobs(jobs)
    for job in jobs:
        if job.url:
            signed_in.forget(job.url)
