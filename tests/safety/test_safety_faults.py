"""Faults on a hosted Galaxy: the server killed, stopped, raced, or left without disk space.

The invariant under test: each Galaxy output is always one complete save (never torn, never a
mix of two saves) and never older than the last save the browser saw acknowledged.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time

import pytest
from galaxy_cellxgene.labels import read_gene_sets
from support.fixtures import DEMO, TEST_DATA, TOOL_DIR, runtime_command
from support.safety import Hammer, can_mount, fill_disk, mounted, save_content, uncaught, wait_for, which_save

pytestmark = pytest.mark.slow

STRAY_PREFIX = "."  # atomic_write's temporary files: `.<output name>.<random>.tmp`


def n_cells(job) -> int:
    return int(job.client.schema()["dataframe"]["nObs"])


def stray_files(job) -> list[str]:
    expected = {job.annotations.name, job.gene_sets.name}
    return sorted(p.name for p in job.annotations.parent.iterdir() if p.name not in expected)


# --- SIGKILL / SIGTERM -------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(3))
def test_sigkill_mid_session_leaves_the_last_completed_save(runtime, round_):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    job = runtime()
    n = n_cells(job)
    hammer = Hammer(job.client, n, prefix=f"k{round_}x")
    with hammer.running():
        wait_for(lambda: len(hammer.acked) >= 3, 30, "three acknowledged saves")
        time.sleep(rng.uniform(0, 0.4))  # a random moment inside the save loop, not a readiness wait
        job.send(signal.SIGKILL)
        assert job.wait(10) == -signal.SIGKILL
    on_disk = which_save(job.annotations, n)
    # Acknowledged saves are on disk; the one in flight may or may not have landed.
    allowed = {hammer.acked[-1], hammer.sent[-1]}
    assert on_disk in allowed, f"seed {seed}: output holds {on_disk}, acked up to {hammer.acked[-1]}"
    # Only atomic_write's own temporaries may be left beside the output (killed between create and rename).
    leftovers = [f for f in stray_files(job) if not (f.startswith(STRAY_PREFIX) and f.endswith(".tmp"))]
    assert leftovers == [], leftovers
    assert read_gene_sets(job.gene_sets) == {}


@pytest.mark.parametrize("round_", range(3))
def test_sigterm_during_a_save_exits_143_within_a_second_with_a_complete_output(runtime, round_):
    job = runtime()
    n = n_cells(job)
    # Wide saves keep the server inside write_labels for most of each request.
    hammer = Hammer(job.client, n, prefix=f"t{round_}x", width=40)
    with hammer.running():
        wait_for(lambda: len(hammer.acked) >= 3, 30, "three acknowledged saves")
        wait_for(hammer.in_flight.is_set, 10, "a save in flight", interval=0.001)
        sent_at = time.monotonic()
        job.send(signal.SIGTERM)  # what Galaxy's Stop does (to the process group)
        rc = job.wait(10)
        took = time.monotonic() - sent_at
    assert rc == 143, job.log
    # Galaxy collects outputs ~1 s after SIGTERM; the runtime waits at most 0.5 s for a save.
    assert took < 1.0, f"exit took {took:.2f} s"
    on_disk = which_save(job.annotations, n, width=40)
    assert on_disk in {hammer.acked[-1], hammer.sent[-1]}
    assert "terminated" in job.log


# --- concurrent saves --------------------------------------------------------------------


def test_two_tabs_saving_at_once_never_mix_and_the_last_acknowledged_save_wins(runtime):
    job = runtime()
    n = n_cells(job)
    tabs = [Hammer(type(job.client)(job.url), n, prefix=p, limit=40) for p in ("A", "B")]
    seen: list[str] = []
    torn: list[str] = []
    stop_reading = threading.Event()

    def reader() -> None:
        # Galaxy (or a user's download) may read the output at any moment.
        while not stop_reading.is_set():
            try:
                seen.append(which_save(job.annotations, n))
            except AssertionError as err:
                if "holds no categories" not in str(err):  # the initial, empty output
                    torn.append(str(err))

    read_thread = threading.Thread(target=reader, daemon=True)
    read_thread.start()
    threads = [threading.Thread(target=t.run, daemon=True) for t in tabs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    stop_reading.set()
    read_thread.join(timeout=10)

    assert not torn, torn[:3]
    for tab in tabs:
        assert tab.failures == [] and len(tab.acked) == 40, tab.failures
    assert len(set(seen)) > 5, "the reader should have seen many saves"
    final = which_save(job.annotations, n)
    last = {tab.acked[-1]: tab.ack_times[-1] for tab in tabs}
    assert final in last
    a, b = (tabs[0].acked[-1], tabs[1].acked[-1])
    if abs(last[a] - last[b]) > 0.05:  # clearly ordered: the later acknowledgement must win
        assert final == max(last, key=last.get)
    # What the UI reads back is what Galaxy will collect.
    assert {c: list(job.client.get_labels()[c]) for c in job.client.user_categories()} == save_content(final, n)
    # And one more save, alone, is exactly what lands.
    assert job.client.put_labels(save_content("solo", n)).ok
    assert which_save(job.annotations, n) == "solo"
    assert job.client.status()["label_saves"] == 81


# --- no space, read-only, file-size limit ------------------------------------------------


def _assert_failed_save_is_clear(job, response, n: int, previous: str, reason: str) -> None:
    assert response.status_code >= 400, response.status_code
    # The UI shows "Autosave error: HTTP error <code> - <reason>": it must not blame the user (400).
    assert response.status_code != 400, f"a full/read-only disk is not a bad request: {response.text}"
    body = response.text
    assert "Galaxy output" in body and reason in body, f"unclear error for the user: {body}"
    status = job.client.status()
    assert status["last_error"] and reason in status["last_error"], status
    assert which_save(job.annotations, n) == previous, "the previous save must be intact"
    # The job log (what Galaxy shows as stderr/stdout) says it too.
    assert reason in job.log, job.log[-2000:]
    # The viewer itself keeps working.
    assert job.client.health()


def _assert_recovers(job, n: int) -> None:
    assert job.client.put_labels(save_content("after", n)).ok
    assert which_save(job.annotations, n) == "after"
    assert job.client.status()["last_error"] is None


@pytest.mark.skipif(not can_mount(), reason="needs CAP_SYS_ADMIN to mount a tiny tmpfs (CI runs as root)")
def test_disk_full_gives_a_clear_error_and_keeps_the_previous_save(runtime):
    job = runtime()
    n = n_cells(job)
    outputs = job.annotations.parent
    with mounted(["-t", "tmpfs", "-o", "size=512k", "tmpfs"], outputs):
        assert job.client.put_labels(save_content("before", n)).ok
        assert job.client.put_gene_sets([{"geneset_name": "kept", "geneset_description": "", "genes": []}]).ok
        fill_disk(outputs / "filler")
        response = job.client.put_labels(save_content("lost", n))
        _assert_failed_save_is_clear(job, response, n, "before", "No space left on device")
        gene_sets = job.client.put_gene_sets([{"geneset_name": "lost", "geneset_description": "", "genes": []}])
        assert gene_sets.status_code not in (200, 400) and "No space left" in gene_sets.text, gene_sets.text
        assert list(read_gene_sets(job.gene_sets)) == ["kept"]
        (outputs / "filler").unlink()
        _assert_recovers(job, n)


@pytest.mark.skipif(not can_mount(), reason="needs CAP_SYS_ADMIN for a read-only bind mount (CI runs as root)")
def test_read_only_output_dir_gives_a_clear_error_and_keeps_the_previous_save(runtime):
    job = runtime()
    n = n_cells(job)
    outputs = job.annotations.parent
    assert job.client.put_labels(save_content("before", n)).ok
    with mounted(["--bind", str(outputs)], outputs):
        subprocess.run(["mount", "-o", "remount,ro,bind", str(outputs)], check=True)
        response = job.client.put_labels(save_content("lost", n))
        _assert_failed_save_is_clear(job, response, n, "before", "Read-only file system")
        subprocess.run(["mount", "-o", "remount,rw,bind", str(outputs)], check=True)
        _assert_recovers(job, n)


def test_file_size_limit_gives_a_clear_error_and_keeps_the_previous_save(runtime):
    # RLIMIT_FSIZE is what a quota-limited job sees; it needs no root, so this runs everywhere.
    job = runtime()
    n = n_cells(job)
    assert job.client.put_labels(save_content("before", n)).ok
    soft, hard = resource.prlimit(job.proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(job.proc.pid, resource.RLIMIT_FSIZE, (1024, hard))
    try:
        response = job.client.put_labels(save_content("lost", n))
        _assert_failed_save_is_clear(job, response, n, "before", "File too large")
    finally:
        resource.prlimit(job.proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
    _assert_recovers(job, n)


@pytest.mark.skipif(not can_mount(), reason="needs CAP_SYS_ADMIN for a read-only bind mount (CI runs as root)")
def test_unwritable_outputs_at_start_fail_with_a_message_not_a_traceback(tmp_path):
    job_dir = tmp_path / "job"
    (job_dir / "working").mkdir(parents=True)
    outputs = job_dir / "outputs"
    outputs.mkdir()
    with mounted(["--bind", str(outputs)], outputs):
        subprocess.run(["mount", "-o", "remount,ro,bind", str(outputs)], check=True)
        proc = subprocess.run(
            [*runtime_command(DEMO, job_dir), "--idle-timeout", "0.02"],
            cwd=job_dir / "working",
            env={**os.environ, "PYTHONPATH": str(TOOL_DIR)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode != 0
    assert uncaught(proc.stderr) == [], proc.stderr[-3000:]
    assert "Read-only file system" in proc.stderr and "output" in proc.stderr, proc.stderr[-3000:]


# --- previous work from another dataset ---------------------------------------------------


@pytest.mark.parametrize("mode", ["check", "view"])
def test_previous_annotations_from_another_dataset_are_refused_by_name(tmp_path, mode):
    other = TEST_DATA / "broken_annotations_other_dataset.csv"
    (tmp_path / "outputs").mkdir()
    (tmp_path / "working").mkdir()
    if mode == "check":
        argv = [sys.executable, "-m", "galaxy_cellxgene", "check", str(DEMO)]
    else:
        argv = runtime_command(DEMO, tmp_path)
    proc = subprocess.run(
        [*argv, "--previous-annotations", str(other)],
        cwd=tmp_path / "working",
        env={**os.environ, "PYTHONPATH": str(TOOL_DIR)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert uncaught(proc.stderr) == [], proc.stderr
    assert "previous annotations" in proc.stderr and "another dataset" in proc.stderr, proc.stderr
    if mode == "view":  # refused before serving: nothing registered, no outputs claimed as saved
        assert not (tmp_path / "container_runtime.json").exists()


def test_previous_annotations_and_gene_sets_resume_exactly(runtime):
    """The other side of refusing foreign files: this dataset's own files resume byte for byte."""
    job = runtime(
        DEMO,
        "--previous-annotations",
        str(TEST_DATA / "pbmc_demo_annotations.csv"),
        "--previous-gene-sets",
        str(TEST_DATA / "pbmc_demo_gene_sets.csv"),
    )
    from galaxy_cellxgene.labels import read_labels

    resumed = read_labels(job.annotations)
    original = read_labels(TEST_DATA / "pbmc_demo_annotations.csv")
    assert resumed.astype(str).equals(original.astype(str))
    assert read_gene_sets(job.gene_sets) == read_gene_sets(TEST_DATA / "pbmc_demo_gene_sets.csv")
