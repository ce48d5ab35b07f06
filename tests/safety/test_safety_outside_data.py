"""A dataset reads nothing outside itself: every way HDF5 lets a file point elsewhere is refused.

Each crafted file (hostile_h5ad.py) opens in anndata and cellxgene with the outside bytes in
place; these tests run the real CLI the way the tool XMLs do and prove that `check`, `view`,
`view-many` and `merge` refuse it, name the part, and leak nothing (no report, no server,
no merged file).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from galaxy_cellxgene.containment import OutsideData, outside_references
from galaxy_cellxgene.merge import merge_into_h5ad
from galaxy_cellxgene.prepare import prepare
from galaxy_cellxgene.settings import ViewerOptions
from galaxy_cellxgene_testkit.hostile_h5ad import CANARY, CRAFTED, make, make_linked_csv_stand_in
from support.fixtures import TOOL_DIR, start_job
from support.safety import uncaught

ENV = {"PYTHONPATH": str(TOOL_DIR)}


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "galaxy_cellxgene", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**ENV, "PATH": "/usr/bin:/bin"},
        cwd=cwd,
    )


def assert_refused(result: subprocess.CompletedProcess, kind: str, part: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{part} is stored in another file ({kind}" in result.stderr, result.stderr
    assert "Fix: write the dataset without links" in result.stderr
    assert uncaught(result.stderr) == []
    assert CANARY not in result.stdout + result.stderr


@pytest.fixture(params=sorted(CRAFTED))
def crafted(request, tmp_path: Path):
    return make(tmp_path / "data", request.param), CRAFTED[request.param]


def test_the_good_twin_passes(tmp_path: Path) -> None:
    """The crafted files differ from this one in a single part: what refuses them is that part."""
    good = make(tmp_path, "good")
    assert outside_references(good) == []
    result = cli("check", good)
    assert result.returncode == 0, result.stderr


def test_check_refuses_and_names_the_part(crafted, tmp_path: Path) -> None:
    path, spec = crafted
    report = tmp_path / "report.md"
    result = cli("check", path, "--report", report)
    assert_refused(result, spec.kind, spec.part)
    assert CANARY not in (report.read_text() if report.exists() else "")


def test_view_refuses_before_serving(crafted, tmp_path: Path) -> None:
    path, spec = crafted
    job = start_job(tmp_path, path, wait_ready=False)
    rc = job.wait(120)
    log = job.log
    assert rc == 2, log
    assert f"{spec.part} is stored in another file ({spec.kind}" in log, log
    assert CANARY not in log
    # Nothing was registered with Galaxy's proxy: no page, no API, no outside bytes served.
    assert not (job.job_dir / "container_runtime.json").exists()


def test_merge_refuses_and_writes_nothing(crafted, tmp_path: Path) -> None:
    path, spec = crafted
    out = tmp_path / "merged.h5ad"
    labels = tmp_path / "labels.csv"
    labels.write_text("index,mine\n" + "".join(f"cell{i},a\n" for i in range(200)))
    result = cli("merge", path, "--annotations", labels, "--output", out)
    assert_refused(result, spec.kind, spec.part)
    assert not out.exists()
    assert not list(tmp_path.glob(".merge-*")), "a scratch copy was left behind"


def test_view_many_refuses_each_crafted_dataset_by_name(tmp_path: Path) -> None:
    paths = {name: make(tmp_path / "data", name) for name in CRAFTED}
    args = ["view-many", "--annotations-dir", tmp_path / "a", "--gene-sets-dir", tmp_path / "g"]
    for name, path in paths.items():
        args += ["--dataset", f"{name}={path}"]
    result = cli(*args, "--work-dir", tmp_path / "w", "--register", "never", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    for name, spec in CRAFTED.items():
        assert f"{name!r}: ERROR: The dataset: {spec.part} is stored in another file ({spec.kind}" in result.stderr
    assert CANARY not in result.stdout + result.stderr


def test_earlier_annotations_that_point_outside_are_refused(tmp_path: Path) -> None:
    good = make(tmp_path, "good")
    earlier = make_linked_csv_stand_in(tmp_path / "earlier")
    for command in (["check", good], ["merge", good, "--output", tmp_path / "m.h5ad"]):
        flag = "--previous-annotations" if command[0] == "check" else "--annotations"
        result = cli(*command, flag, earlier)
        assert result.returncode == 2, result.stderr
        assert "cell_type is stored in another file (external link" in result.stderr, result.stderr
        assert CANARY not in result.stdout + result.stderr
    assert not (tmp_path / "m.h5ad").exists()


def test_library_entry_points_refuse_too(crafted, tmp_path: Path) -> None:
    """prepare() and merge_into_h5ad() are the chokepoints every viewer and merge passes."""
    path, spec = crafted
    with pytest.raises(OutsideData, match=spec.kind):
        prepare(path, tmp_path / "work", ViewerOptions())
    with pytest.raises(OutsideData, match=spec.kind):
        merge_into_h5ad(path, tmp_path / "out.h5ad", None, None)
    assert not (tmp_path / "out.h5ad").exists()


def test_the_merged_output_holds_no_link(tmp_path: Path) -> None:
    good = make(tmp_path, "good")
    labels = tmp_path / "labels.csv"
    labels.write_text("index,mine\n" + "".join(f"cell{i},a\n" for i in range(200)))
    out = tmp_path / "merged.h5ad"
    assert cli("merge", good, "--annotations", labels, "--output", out).returncode == 0
    assert outside_references(out) == []


RELATIVE_READ = """
import sys
import galaxy_cellxgene.__main__  # the tool's entry module, without running a command
import h5py
with h5py.File(sys.argv[1], "r") as f:
    try:
        print(f["X"][:].tobytes().decode("latin-1"))
    except OSError as err:
        print("refused:", err)
"""


@pytest.mark.parametrize("entry_module", [True, False], ids=["runtime", "plain-h5py"])
def test_relative_external_storage_resolves_nowhere_in_the_runtime(tmp_path: Path, entry_module: bool) -> None:
    """Defence in depth: even if a check were missed, a relative path reaches no file.

    Without the runtime's HDF5 prefixes (plain-h5py) the same read returns the secret, which
    shows what the prefixes stop; HDF5 resolves relative paths against the working directory.
    """
    secret = tmp_path / "galaxy.yml"
    secret.write_bytes(CANARY.encode().ljust(64, b"."))
    crafted = tmp_path / "relative.h5ad"
    with h5py.File(crafted, "w") as f:
        f.create_dataset("X", (16,), "<f4", external=[("galaxy.yml", 0, 64)])
    assert outside_references(crafted)[0].kind == "external storage"
    code = RELATIVE_READ if entry_module else RELATIVE_READ.replace("import galaxy_cellxgene.__main__", "")
    result = subprocess.run(
        [sys.executable, "-c", code, str(crafted)],
        capture_output=True,
        text=True,
        env={**ENV, "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        timeout=60,
    )
    if entry_module:
        assert "refused:" in result.stdout, result.stdout + result.stderr
        assert CANARY not in result.stdout
    else:
        assert CANARY in result.stdout, result.stdout + result.stderr


def test_the_scan_reads_no_data(tmp_path: Path) -> None:
    """Scanning must not touch the bytes it is judging: a dataset whose storage is missing scans."""
    path = tmp_path / "missing.h5ad"
    with h5py.File(path, "w") as f:
        f.create_dataset("X", (4,), "<f4", external=[(str(tmp_path / "gone.bin"), 0, 16)])
        f["ok"] = np.arange(3)
    (found,) = outside_references(path)
    assert (found.path, found.kind) == ("/X", "external storage")
