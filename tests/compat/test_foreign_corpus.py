"""h5ad files written by other projects (scanpy's bundled PBMC data, anndata's format archives,
scirpy's and squidpy's test data), fetched pinned from PyPI (scripts/fetch_foreign_corpus.py).

Each opens (check, view, a gene, labels saved, Finish, the merged file read back by anndata with
every original obs column) or is refused naming every blocker it has, each claim checked
against the file as anndata reads it. Files with the same bytes are tested once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from galaxy_cellxgene.cli import EXIT_INPUT, main
from galaxy_cellxgene.labels import read_labels
from support.foreign_corpus import fetch_all, manifest_files, unique_by_digest, verified_blockers

FILES = unique_by_digest(manifest_files())
OPENS = [e for e in FILES if e["expect"] == "opens"]
REFUSED = [e for e in FILES if e["expect"] == "refused"]
LABEL = "foreign_label"


@pytest.fixture(scope="session")
def corpus() -> dict[str, Path]:
    return fetch_all()


def _ids(entry: dict) -> str:
    return entry["name"]


def test_same_bytes_are_tested_once() -> None:
    names = {e["name"] for e in FILES}
    # anndata keeps scanpy's PBMC file as its v0.5.0 archive: the same bytes.
    assert "scanpy_pbmc68k_reduced" in names and "anndata_archive_v0.5.0" not in names
    assert len({e["sha256"] for e in manifest_files()}) == len(FILES)


@pytest.mark.parametrize("entry", REFUSED, ids=_ids)
def test_refusal_names_every_blocker_truly(entry: dict, corpus, tmp_path: Path, capsys) -> None:
    path = corpus[entry["sha256"]]
    code = main(["check", str(path), "--report", str(tmp_path / "report.md")])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("ERROR: ")]
    assert all(" Fix: " in line for line in errors)
    assert "not an AnnData" not in err  # the file's own header says it is one
    assert sorted(verified_blockers(errors, path)) == sorted(entry["blockers"])


@pytest.mark.parametrize("entry", OPENS, ids=_ids)
def test_check_passes(entry: dict, corpus, tmp_path: Path, capsys) -> None:
    report = tmp_path / "report.md"
    code = main(["check", str(corpus[entry["sha256"]]), "--report", str(report)])
    assert code == 0, capsys.readouterr().err
    assert "can be opened" in report.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("entry", OPENS, ids=_ids)
def test_opens_serves_a_gene_saves_labels_and_merges(entry: dict, corpus, runtime) -> None:
    import anndata

    source = corpus[entry["sha256"]]
    original = anndata.read_h5ad(source)
    job = runtime(source)
    client = job.client
    assert "<html" in client.page().lower()
    schema = client.schema()
    n_obs = schema["dataframe"]["nObs"]
    assert n_obs == original.n_obs
    assert sorted(layout["name"] for layout in schema["layout"]["obs"]) == entry["embeddings"]
    gene = str(original.var_names[0])
    values = client.expression(gene)
    assert values.shape == (n_obs,) and np.isfinite(values).all()
    sent = [["T cell", "B cell", "unassigned"][(i * 7) % 3] for i in range(n_obs)]
    assert client.put_labels({LABEL: sent}).ok
    assert list(read_labels(job.annotations)[LABEL]) == sent
    assert client.finish().ok
    assert job.wait(120) == 0, job.log
    assert "Traceback" not in job.log
    import h5py

    with h5py.File(job.merged) as f:  # the current layout, whatever the input's
        assert f["obs"].attrs["encoding-type"] == "dataframe" and f["var"].attrs["encoding-type"] == "dataframe"
    merged = anndata.read_h5ad(job.merged)
    assert list(merged.obs[LABEL].astype(str)) == sent
    assert list(merged.obs_names) == list(original.obs_names)
    for column in original.obs.columns:
        pd.testing.assert_series_equal(
            merged.obs[column].reset_index(drop=True), original.obs[column].reset_index(drop=True), check_names=False
        )


@pytest.mark.slow
def test_spatial_coordinates_are_drawn_as_the_tissue(corpus, runtime) -> None:
    """squidpy's Visium spots: offered as 'spatial', y flipped (image y grows downwards)."""
    import anndata
    from server.common.fbs.matrix import decode_matrix_fbs

    entry = next(e for e in OPENS if e["name"] == "squidpy_test_data")
    source = corpus[entry["sha256"]]
    tissue = anndata.read_h5ad(source).obsm["spatial"]
    job = runtime(source)
    response = job.client.get(
        "api/v0.2/layout/obs", params={"layout-name": "spatial"}, headers={"Accept": "application/octet-stream"}
    )
    response.raise_for_status()
    drawn = decode_matrix_fbs(response.content).to_numpy()
    # cellxgene rescales an embedding to [0, 1] keeping its aspect; the picture must be the
    # tissue's: x as in the image, y mirrored (drawn upwards), so the spots keep their places.
    assert np.corrcoef(drawn[:, 0], tissue[:, 0])[0, 1] > 0.999
    assert np.corrcoef(drawn[:, 1], -tissue[:, 1])[0, 1] > 0.999
    with open(source, "rb") as handle:  # the input is never rewritten
        import hashlib

        assert hashlib.sha256(handle.read()).hexdigest() == entry["sha256"]


@pytest.mark.slow
def test_the_list_tool_opens_them_all_in_one_session(corpus, tmp_path: Path) -> None:
    """`view-many` (the list tool): each file serves its embeddings and merges on Finish."""
    import contextlib
    import signal
    import subprocess

    import anndata
    from galaxy_cellxgene.multi.names import unique_safe_names
    from support.multi import start_many

    names = [e["name"] for e in OPENS]
    job = start_many(tmp_path, {e["name"]: corpus[e["sha256"]] for e in OPENS})
    try:
        slugs = dict(zip(names, unique_safe_names(names), strict=True))
        for entry in OPENS:
            client = job.client(slugs[entry["name"]])
            schema = client.schema()
            assert sorted(layout["name"] for layout in schema["layout"]["obs"]) == entry["embeddings"]
            assert client.put_labels({LABEL: ["x"] * schema["dataframe"]["nObs"]}).ok
        status = job.finish()
        assert status["finished"] and status["finish_error"] is None, status
        assert job.wait(120) == 0, job.log
        for entry in OPENS:
            merged = anndata.read_h5ad(job.merged_dir / f"{slugs[entry['name']]}.h5ad")
            original = anndata.read_h5ad(corpus[entry["sha256"]])
            assert set(original.obs.columns) | {LABEL} == set(merged.obs.columns)
        assert "Traceback" not in job.log
    finally:
        job.send(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            job.wait(10)
