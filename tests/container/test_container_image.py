"""The tool's container image, built from containers/Dockerfile and run the way Galaxy runs it.

Everything here runs the real image under podman: the real cellxgene server in it, real
signals through its init, real files through real bind mounts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import anndata
import pandas as pd
import pytest
import requests
from galaxy_cellxgene_testkit.health import healthy, wait_until
from galaxy_cellxgene_testkit.jobs import DECLARED_PORT
from galaxy_cellxgene_testkit.jobs import REPO as ROOT
from galaxy_cellxgene_testkit.ui_client import UiClient
from support.container_fixture import JOB_UID, podman, view_command

pytestmark = [pytest.mark.container, pytest.mark.slow]

DEMO = ROOT / "test-data" / "pbmc_demo.h5ad"
BROKEN = ROOT / "test-data" / "broken_no_embedding.h5ad"


def read_labels(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#", index_col=0, dtype="category", keep_default_na=False)


def n_cells() -> int:
    return int(anndata.read_h5ad(DEMO, backed="r").n_obs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the image definition ----------------------------------------------------------------


def test_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "hadolint.sh"), str(ROOT / "containers" / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_non_root_with_init_healthcheck_and_labels(built_image: str) -> None:
    info = json.loads(podman("image", "inspect", built_image).stdout)[0]
    config = info["Config"]
    assert config["User"] == "1000:1000"
    # An ENTRYPOINT that only wraps: Galaxy's `run IMAGE /bin/sh tool_script.sh` must run as given.
    assert config["Entrypoint"] == ["/usr/bin/tini", "-g", "--"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["GALAXY_CELLXGENE_IN_CONTAINER"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert f"{DECLARED_PORT}/tcp" in config["ExposedPorts"]
    health = info["Healthcheck"]["Test"]
    assert "/health" in " ".join(health)
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == "1.3.0+galaxy0"
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.source"].startswith("https://")


def test_image_holds_exactly_the_lock(built_image: str) -> None:
    """The tested set from requirements/runtime.txt, this repository's runtime, and nothing else."""
    listing = podman(
        "run",
        "--rm",
        "--no-healthcheck",
        built_image,
        "python",
        "-c",
        "import importlib.metadata as m, json;"
        "print(json.dumps(sorted((d.metadata['Name'], d.version) for d in m.distributions())))",
    ).stdout
    installed = {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in json.loads(listing)}
    locked = {}
    for line in (ROOT / "requirements" / "runtime.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            locked[re.sub(r"[-_.]+", "-", name).lower()] = version
    locked["galaxy-cellxgene"] = "1.3.0+galaxy0"
    assert installed == locked


def test_version_command_answers(built_image: str) -> None:
    """macros.xml's <version_command> runs inside the image."""
    result = podman(
        "run", "--rm", "--no-healthcheck", built_image, "sh", "-c", "cellxgene --no-upgrade-check --version"
    )
    assert "1.3.0" in result.stdout + result.stderr


# --- the tool's command, run as Galaxy's Docker destination runs it ----------------------


def test_check_mode_writes_its_report_and_exit_codes_pass_through(galaxy_container_job) -> None:
    command = "{runtime} check {input} --report {outputs}/galaxy_dataset_report.dat"
    ok = galaxy_container_job(DEMO, "check-ok", command=command, wait_ready=False)
    assert ok.wait(timeout=120) == 0, ok.log
    report = ok.outputs / "galaxy_dataset_report.dat"
    assert "can be opened in cellxgene" in report.read_text()
    assert report.stat().st_uid == JOB_UID

    bad = galaxy_container_job(BROKEN, "check-bad", command=command, wait_ready=False)
    assert bad.wait(timeout=120) == 2, bad.log
    assert "cellxgene cannot start" in bad.log


def test_view_like_galaxy_saves_labels_and_finishes(galaxy_container_job) -> None:
    job = galaxy_container_job(DEMO, "view")
    client = UiClient(job.url)

    # The job's user (not in the image's passwd), and tini as PID 1 above the job script.
    assert job.exec("id", "-u").strip() == str(JOB_UID)
    assert job.exec("cat", "/proc/1/cmdline").split("\0")[:3] == ["/usr/bin/tini", "-g", "--"]
    # The image's HEALTHCHECK, run on demand (podman schedules it with systemd, absent here).
    health = podman("healthcheck", "run", job.name, check=False)
    assert health.returncode == 0, health.stdout + health.stderr
    assert client.health()

    page = client.page()
    assert '<div id="root"></div>' in page
    assert 'src="galaxy/static/finish.js"' in page
    assert requests.get(job.url + "galaxy/static/finish.js", timeout=10).ok

    # The compiled libraries the image slims (stripped symbols) at work: expression, diffexp.
    cells = n_cells()
    gene = str(anndata.read_h5ad(DEMO, backed="r").var_names[0])
    assert len(client.expression(gene)) == cells
    half = cells // 2
    diffexp = requests.post(
        job.url + "api/v0.2/diffexp/obs",
        json={
            "mode": "topN",
            "count": 5,
            "set1": {"filter": {"obs": {"index": [[0, half]]}}},
            "set2": {"filter": {"obs": {"index": [[half, cells]]}}},
        },
        timeout=60,
    )
    assert diffexp.ok, diffexp.text
    assert len(diffexp.json()["positive"]) == 5

    labels = ["T cell" if i % 3 else "B cell" for i in range(cells)]
    response = client.put_labels({"cell_type": labels})
    assert response.ok, response.text
    annotations = job.outputs / "galaxy_dataset_annotations.dat"
    saved = read_labels(annotations)
    assert list(saved["cell_type"].astype(str)) == labels
    assert annotations.stat().st_uid == JOB_UID

    gene_set = {"geneset_name": "markers", "geneset_description": "", "genes": [{"gene_symbol": gene}]}
    response = client.put_gene_sets([gene_set])
    assert response.ok, response.text
    assert "markers" in (job.outputs / "galaxy_dataset_gene_sets.dat").read_text()

    response = client.finish()
    assert response.ok, response.text
    assert job.wait(timeout=60) == 0, job.log
    merged = job.working / "merged" / "annotated.h5ad"
    assert merged.is_file(), job.log
    adata = anndata.read_h5ad(merged)
    assert list(adata.obs["cell_type"].astype(str)) == labels


@pytest.mark.parametrize("exec_server", [False, True], ids=["shell-between", "exec"])
def test_stop_of_a_galaxy_job_is_prompt_and_keeps_the_last_save(galaxy_container_job, exec_server: bool) -> None:
    """`docker stop`/`podman stop`: SIGTERM to PID 1, tini, above `/bin/sh tool_script.sh`.
    tini -g signals the whole group, so the server gets SIGTERM with the shell. With the
    shell in between, the shell may exit first and the container end before the server's
    handler has run; the outputs are the last completed save either way (atomic renames).
    With `exec` the server is tini's child and its own SIGTERM path runs every time.
    (Galaxy's own Stop uses `docker kill`, SIGKILL: only the atomic saves matter there.)"""
    job = galaxy_container_job(DEMO, "stop", command=view_command(exec_server=exec_server))
    labels = ["kept" if i % 2 else "also kept" for i in range(n_cells())]
    assert UiClient(job.url).put_labels({"review": labels}).ok

    started = time.monotonic()
    stop = podman("stop", "--time", "20", job.name, check=False)
    code = job.wait(timeout=60)
    elapsed = time.monotonic() - started
    assert stop.returncode == 0, stop.stderr
    assert code == 128 + signal.SIGTERM, job.log
    # Had SIGTERM reached nobody, podman would SIGKILL after the 20 s grace time (137).
    assert elapsed < 10, f"stop took {elapsed:.1f} s"
    if exec_server:
        assert "terminated (Galaxy's Stop)" in job.log
    saved = read_labels(job.outputs / "galaxy_dataset_annotations.dat")
    assert list(saved["review"].astype(str)) == labels
    assert not (job.working / "merged" / "annotated.h5ad").exists()


def test_singularity_style_job_registers_itself(galaxy_container_job) -> None:
    """Apptainer/Singularity destinations: host network, no port mapping, and no container
    monitor in Galaxy for them. With GALAXY_CELLXGENE_IN_CONTAINER=0 (docs/container.md) the
    runtime picks a free port and writes container_runtime.json itself, as outside a container."""
    job = galaxy_container_job(
        DEMO,
        "host-net",
        host_network=True,
        env={"GALAXY_CELLXGENE_IN_CONTAINER": "0", "GALAXY_CELLXGENE_HOST": "127.0.0.1"},
    )
    assert not job.url.endswith(f":{DECLARED_PORT}/"), "a fixed port would clash between jobs on one node"
    assert UiClient(job.url).health()
    assert UiClient(job.url).finish().ok
    assert job.wait(timeout=60) == 0, job.log
    assert (job.working / "merged" / "annotated.h5ad").is_file(), job.log


# --- the standalone script, and Stop ----------------------------------------------------


@pytest.mark.parametrize("how", ["podman stop", "ctrl-c"])
def test_run_image_script_ends_on_stop_and_on_ctrl_c(built_image: str, tmp_path: Path, how: str) -> None:
    """scripts/run-image.sh: the image's own package (no tool folder mounted), its default
    non-root user. `podman stop` (SIGTERM): exit 143 at once, the last save kept, no merged
    file. Ctrl-C (SIGINT to `podman run`, proxied to tini and on to the server): the clean
    finish, exit 0, merged h5ad written."""
    port = free_port()
    name = f"gxcx-test-{os.getpid()}-{how.replace(' ', '-')}"
    out = tmp_path / "out"
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(ROOT / "scripts" / "run-image.sh"), str(DEMO), str(out)],
            env={**os.environ, "IMAGE": built_image, "HOST_PORT": str(port), "NAME": name},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        try:
            wait_until(lambda: healthy(url), 180, "/health", proc)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{log_path.read_text(errors='replace')}") from None
        assert podman("exec", name, "id", "-u").stdout.strip() == "1000"
        client = UiClient(url)
        labels = ["x" if i % 2 else "y" for i in range(n_cells())]
        assert client.put_labels({"review": labels}).ok

        started = time.monotonic()
        if how == "podman stop":
            stop = podman("stop", "--time", "20", name, check=False)
            assert stop.returncode == 0, stop.stderr
        else:
            proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        elapsed = time.monotonic() - started
        log_text = log_path.read_text(errors="replace")
        # A server that ignored the signal would be killed only after the 20 s grace time.
        assert elapsed < 10, f"{how} took {elapsed:.1f} s"
        assert list(read_labels(out / "annotations.csv")["review"].astype(str)) == labels
        if how == "podman stop":
            assert code == 128 + signal.SIGTERM, log_text
            assert "terminated (Galaxy's Stop)" in log_text
            assert not (out / "merged.h5ad").exists()
        else:
            assert code == 0, log_text
            assert "could not be written" not in log_text
            merged = anndata.read_h5ad(out / "merged.h5ad")
            assert list(merged.obs["review"].astype(str)) == labels
    finally:
        if proc.poll() is None:
            podman("rm", "--force", "--time", "0", name, check=False)
            proc.wait(timeout=30)
