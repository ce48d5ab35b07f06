"""Every h5ad in the compatibility corpus, as users bring them, through check, view, labels and merge.

The corpus (test-data/compat/) was written by anndata 0.7 to 0.13 and scanpy with the pandas each
was used with (scripts/data/make_compat_data.py; writers.json has the versions). For each file:
`check` passes, or refuses with a named problem and the fix (no X: choose a layer); the viewer
serves the page, schema and a gene as cellxgene's UI asks; a label save lands in the output;
Finish writes a merged h5ad; and the writer's anndata reads it back with the labels and every
original obs column (see support.compat.read_back for where that read runs).

One `view-many` session serves every file (the real runtime and cellxgene, one process: the
files are small, and a process per file would cost minutes of CI); the single-dataset `view`
path runs on the newest writer's file.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from galaxy_cellxgene.cli import main
from galaxy_cellxgene.exit_codes import EXIT_INPUT
from galaxy_cellxgene.labels import read_labels
from galaxy_cellxgene.multi.names import unique_safe_names
from support.compat import (
    CORPUS,
    LABEL,
    assert_layout_kept,
    corpus,
    labels_for,
    read_back,
    storage_of,
    writer_of,
    writers,
)
from support.multi import ManyJob, start_many

FILES = corpus()
NEEDS_LAYER = [f for f in FILES if storage_of(f) == "no_x"]
HAS_X = [f for f in FILES if f not in NEEDS_LAYER]
NEWEST = "anndata-0.13"


def test_the_corpus_covers_every_writer_and_stays_small() -> None:
    made = writers()
    assert {"anndata-0.7", "anndata-0.8", "anndata-0.10", "anndata-0.11", "anndata-0.12", NEWEST} <= set(made)
    assert any(w.startswith("scanpy") for w in made)
    assert made[NEWEST]["versions"]["pandas"].startswith("3.")
    for path in FILES:
        assert path.stat().st_size < 1_000_000, path.name
    assert {writer_of(f) for f in FILES} == set(made)
    # Every file a writer listed is here, and nothing else.
    assert sorted(f.name for f in FILES) == sorted(name for m in made.values() for name in m["made"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_check(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.md"
    code = main(["check", str(path), "--report", str(report)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    text = report.read_text()
    if path in NEEDS_LAYER:
        # Honest refusal: no X to show; the fix names the option and the layers to choose from.
        assert code == EXIT_INPUT, err
        assert "no X matrix, only layers (counts, log1p)" in err and "'layer' option" in err
        assert main(["check", str(path), "--layer", "counts", "--report", str(report)]) == 0
        return
    assert code == 0, err
    assert "can be opened" in text
    assert "- Cells: 2" in text  # >= 200 cells in every file
    # pandas' nullable columns, and anndata 0.13's index and text: shown converted, and the report says so.
    # (anndata 0.7 turned pandas strings into categoricals: nothing to convert there.)
    nullable = storage_of(path) in ("nullable", "nullable_string") and writer_of(path) != "anndata-0.7"
    if nullable or writer_of(path) in (NEWEST, "scanpy-1.12"):
        assert "### Columns shown converted" in text, text
    else:
        assert "### Columns shown converted" not in text, text
    if storage_of(path) == "obsm_frame":
        assert "- qc_frame []: not shown: a dataframe, not a 2-D array of coordinates" in text


@pytest.fixture
def many_job(tmp_path: Path) -> Iterator[list]:
    jobs: list[ManyJob] = []

    def start(files: list[Path], *extra: str) -> tuple[ManyJob, dict[Path, str]]:
        names = [f.stem for f in files]
        job = start_many(tmp_path, dict(zip(names, files, strict=True)), *extra)
        jobs.append(job)
        return job, dict(zip(files, unique_safe_names(names), strict=True))

    yield start  # type: ignore[misc]
    for job in jobs:
        job.send(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            job.wait(10)


def _use_like_the_ui(job: ManyJob, slug: str) -> list[str]:
    client = job.client(slug)
    assert "<html" in client.page().lower()
    assert client.config()["displayNames"]["dataset"]
    schema = client.schema()
    n_obs = schema["dataframe"]["nObs"]
    assert n_obs >= 200
    gene = client.get(
        "api/v0.2/annotations/var",
        params={"annotation-name": schema["annotations"]["var"]["index"]},
        headers={"Accept": "application/octet-stream"},
    )
    gene.raise_for_status()
    from server.common.fbs.matrix import decode_matrix_fbs

    first_gene = str(decode_matrix_fbs(gene.content).iloc[0, 0])
    values = client.expression(first_gene)
    assert values.shape == (n_obs,) and np.isfinite(values).all()
    labels = labels_for(n_obs)
    assert client.put_labels({LABEL: labels}).ok
    return labels


def _round_trip(job: ManyJob, slugs: dict[Path, str], sent: dict[Path, list[str]]) -> None:
    status = job.finish()
    assert status["finished"] and status["finish_error"] is None, status
    assert job.wait(120) == 0, job.log
    for path, slug in slugs.items():
        saved = read_labels(job.annotations_dir / f"{slug}.csv")
        assert list(saved[LABEL]) == sent[path], path.name
        merged = job.merged_dir / f"{slug}.h5ad"
        assert_layout_kept(path, merged)
        reader, seen = read_back(merged, path)
        assert seen["n_obs"] == len(sent[path]), (path.name, reader)
        assert seen["labels"][LABEL]["categorical"], (path.name, reader)
        assert seen["labels"][LABEL]["values"] == sent[path], (path.name, reader)
        assert seen["intact"] and seen["index_intact"], (path.name, reader, seen["obs_columns"])
    assert "Traceback" not in job.log


@pytest.mark.slow
def test_every_file_with_x_opens_serves_a_gene_saves_labels_and_merges(many_job) -> None:
    job, slugs = many_job(HAS_X)
    sent = {path: _use_like_the_ui(job, slug) for path, slug in slugs.items()}
    _round_trip(job, slugs, sent)


@pytest.mark.slow
def test_files_without_x_open_with_a_layer_as_x(many_job) -> None:
    job, slugs = many_job(NEEDS_LAYER, "--layer", "counts")
    sent = {path: _use_like_the_ui(job, slug) for path, slug in slugs.items()}
    _round_trip(job, slugs, sent)


@pytest.mark.slow
def test_single_view_opens_the_newest_writers_file(runtime) -> None:
    """`view` (one dataset, as the Galaxy tool runs it) on anndata 0.13 + pandas 3 output."""
    source = CORPUS / f"{NEWEST}_nullable_string.h5ad"
    job = runtime(source)
    client = job.client
    assert "<html" in client.page().lower()
    schema = client.schema()
    n_obs = schema["dataframe"]["nObs"]
    columns = {c["name"]: c["type"] for c in schema["annotations"]["obs"]["columns"]}
    assert columns["donor"] == "categorical" and columns["n_counts"] == "float32"
    assert client.expression("GENE3").shape == (n_obs,)
    labels = labels_for(n_obs)
    assert client.put_labels({LABEL: labels}).ok
    assert list(read_labels(job.annotations)[LABEL]) == labels  # the save is in the output at once
    assert client.finish().ok
    assert job.wait(120) == 0, job.log
    assert "Traceback" not in job.log
    assert_layout_kept(source, job.merged)
    _, seen = read_back(job.merged, source)
    assert seen["labels"][LABEL]["categorical"] and seen["labels"][LABEL]["values"] == labels
    assert seen["intact"] and seen["index_intact"]
