"""The real runtime on test data, driven over HTTP exactly as cellxgene's web client drives it."""

from __future__ import annotations

import hashlib
import signal
import time

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from galaxy_cellxgene.labels import read_gene_sets, read_labels
from support.fixtures import DEMO, TEST_DATA, wait_until

pytestmark = pytest.mark.slow


def cell_types(n: int, offset: int = 0) -> list[str]:
    names = ["T cell", "B cell", "NK, cytotoxic", 'mono "classical"', "unassigned"]
    return [names[(i + offset) % len(names)] for i in range(n)]


def gene_set(name: str, genes: list[str]) -> dict:
    return {
        "geneset_name": name,
        "geneset_description": f"{name} markers",
        "genes": [{"gene_symbol": g, "gene_description": ""} for g in genes],
    }


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_save_lands_in_the_galaxy_outputs(runtime):
    job = runtime()
    n = job.client.schema()["dataframe"]["nObs"]
    # Valid outputs exist before the first save: a Stop right now must not leave empty datasets.
    assert list(read_labels(job.annotations).columns) == []
    assert len(read_labels(job.annotations)) == n
    assert read_gene_sets(job.gene_sets) == {}

    first = cell_types(n)
    assert job.client.put_labels({"cell_type": first}).ok
    assert list(read_labels(job.annotations)["cell_type"]) == first

    second = cell_types(n, offset=2)
    assert job.client.put_labels({"cell_type": second, "quality": ["good"] * n}).ok
    saved = read_labels(job.annotations)
    assert list(saved["cell_type"]) == second
    assert list(saved["quality"]) == ["good"] * n
    assert list(saved.index) == list(ad.read_h5ad(DEMO, backed="r").obs_names)

    var_index = ad.read_h5ad(DEMO, backed="r").var_names[:3].tolist()
    assert job.client.put_gene_sets([gene_set("early", var_index)]).ok
    assert read_gene_sets(job.gene_sets)["early"]["genes"] == [
        {"gene_symbol": g, "gene_description": ""} for g in var_index
    ]
    # The UI reads back what it saved.
    assert list(job.client.get_labels()["cell_type"]) == second
    assert job.client.status()["label_saves"] == 2


def test_deleting_every_category_leaves_a_valid_file(runtime):
    job = runtime()
    n = job.client.schema()["dataframe"]["nObs"]
    assert job.client.put_labels({"tmp": cell_types(n)}).ok
    assert job.client.put_labels({}).ok
    labels = read_labels(job.annotations)
    assert list(labels.columns) == []
    assert len(labels) == n


def test_sigterm_exits_at_once_and_keeps_the_last_save(runtime):
    job = runtime()
    n = job.client.schema()["dataframe"]["nObs"]
    labels = cell_types(n, offset=1)
    assert job.client.put_labels({"cell_type": labels}).ok
    assert job.client.put_gene_sets([gene_set("kept", [])]).ok

    started = time.monotonic()
    job.send(signal.SIGTERM)
    assert job.wait(10) == 143
    assert time.monotonic() - started < 2
    assert list(read_labels(job.annotations)["cell_type"]) == labels
    assert "kept" in read_gene_sets(job.gene_sets)
    # No merged h5ad after a Stop: Galaxy discovers nothing rather than an empty/corrupt file.
    assert not job.merged.exists()
    assert not [p.name for p in job.annotations.parent.iterdir() if p.name.startswith(".")]


def test_finish_writes_the_merged_h5ad_and_exits_zero(runtime):
    before = sha256(DEMO)
    job = runtime()
    n = job.client.schema()["dataframe"]["nObs"]
    labels = cell_types(n)
    assert job.client.put_labels({"cell_type": labels}).ok
    symbols = ad.read_h5ad(DEMO, backed="r").var_names[:2].tolist()
    assert job.client.put_gene_sets([gene_set("pair", symbols)]).ok

    response = job.client.finish()
    assert response.ok and response.json()["finished"]
    assert job.wait(30) == 0

    merged = ad.read_h5ad(job.merged)
    assert isinstance(merged.obs["cell_type"].dtype, pd.CategoricalDtype)
    assert list(merged.obs["cell_type"].astype(str)) == labels
    original = ad.read_h5ad(DEMO)
    assert merged.shape == original.shape
    assert list(merged.obs_names) == list(original.obs_names)
    np.testing.assert_array_equal(
        merged.X.toarray() if hasattr(merged.X, "toarray") else merged.X,
        original.X.toarray() if hasattr(original.X, "toarray") else original.X,
    )
    assert list(merged.uns["cellxgene_gene_sets"]["gene_symbol"]) == symbols
    assert sha256(DEMO) == before, "the input dataset must never be modified"
    assert "finished (finish button)" in job.log


def test_saves_are_refused_after_finish(runtime):
    job = runtime()
    n = job.client.schema()["dataframe"]["nObs"]
    job.client.finish()
    # The process may already be gone; if it still answers, it must refuse rather than lose the save.
    try:
        response = job.client.put_labels({"late": cell_types(n)})
    except Exception:
        response = None
    if response is not None:
        assert not response.ok
    assert job.wait(30) == 0
    assert "late" not in read_labels(job.annotations).columns


def test_resume_from_previous_annotations_and_gene_sets(runtime):
    previous = TEST_DATA / "pbmc_demo_annotations.csv"
    previous_sets = TEST_DATA / "pbmc_demo_gene_sets.csv"
    job = runtime(DEMO, "--previous-annotations", str(previous), "--previous-gene-sets", str(previous_sets))
    expected = read_labels(previous)
    shown = job.client.get_labels()
    for column in expected.columns:
        assert list(shown[column]) == list(expected[column].astype(str))
    assert {g["geneset_name"] for g in job.client.get_gene_sets()} == set(read_gene_sets(previous_sets))
    # The outputs already hold the resumed work before any save.
    assert list(read_labels(job.annotations).columns) == list(expected.columns)
    assert set(read_gene_sets(job.gene_sets)) == set(read_gene_sets(previous_sets))


def test_layer_as_x_with_unique_gene_symbols(runtime):
    job = runtime(DEMO, "--var-names", "gene_symbols", "--make-var-names-unique", "--layer", "lognorm")
    original = ad.read_h5ad(DEMO)
    symbols = original.var["gene_symbols"].astype(str)
    assert not symbols.is_unique  # the demo carries duplicates on purpose
    duplicated = symbols[symbols.duplicated()].iloc[0]
    second = int(np.flatnonzero(symbols.to_numpy() == duplicated)[1])
    values = job.client.expression(f"{duplicated}-1")
    layer = original.layers["lognorm"]
    column = layer[:, second].toarray().ravel() if hasattr(layer, "toarray") else layer[:, second]
    np.testing.assert_allclose(values, column, rtol=1e-6)
    assert "prepared" in job.log and "layer 'lognorm' as X" in job.log


def test_idle_timeout_finishes_cleanly(runtime):
    job = runtime(DEMO, "--idle-timeout", "0.03")  # 1.8 s
    n = job.client.schema()["dataframe"]["nObs"]
    assert job.client.put_labels({"cell_type": cell_types(n)}).ok
    assert job.wait(60) == 0
    assert "idle timeout" in job.log
    assert list(ad.read_h5ad(job.merged).obs["cell_type"].astype(str)) == cell_types(n)


def test_page_carries_the_finish_control(runtime):
    job = runtime()
    page = job.client.page()
    assert 'src="galaxy/static/finish.js"' in page
    script = job.client.get("galaxy/static/finish.js")
    assert script.ok and "Finish and save to Galaxy" in script.text


def test_binary_responses_are_not_empty_for_small_requests(runtime):
    # cellxgene returns bytearray bodies that some WSGI servers send as empty.
    job = runtime()
    response = job.client.get(
        "api/v0.2/layout/obs",
        params={"layout-name": "umap"},
        headers={"Accept": "application/octet-stream", "Accept-Encoding": "identity"},
    )
    assert response.ok and len(response.content) > 0


def test_in_a_container_it_binds_the_declared_port_and_registers_nothing(runtime, unused_port):
    job = runtime(DEMO, "--port", str(unused_port), env={"GALAXY_CELLXGENE_IN_CONTAINER": "1"}, wait_ready=False)
    url = f"http://127.0.0.1:{unused_port}/"
    import requests

    def healthy():
        try:
            return requests.get(url + "health", timeout=2).ok
        except requests.RequestException:
            return False

    wait_until(healthy, 120, "health on the declared port", job.proc)
    assert not (job.job_dir / "container_runtime.json").exists()
    assert "ready on http://127.0.0.1:" in job.log or "ready on" in job.log


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("broken_not_hdf5.h5ad", "not an HDF5 file"),
        ("broken_not_anndata.h5ad", "not an AnnData"),
        ("broken_no_embedding.h5ad", "No embedding"),
        ("broken_embedding_no_prefix.h5ad", "does not start with X_"),
        ("broken_embedding_inf.h5ad", "infinite"),
        ("broken_embedding_all_nan.h5ad", "NaN"),
        ("broken_duplicate_obs_names.h5ad", "cell names"),
        ("broken_duplicate_var_names.h5ad", "gene names"),
    ],
)
def test_bad_input_fails_fast_with_a_named_problem(runtime, name, expected):
    started = time.monotonic()
    job = runtime(TEST_DATA / name, wait_ready=False)
    assert job.wait(60) == 2
    assert time.monotonic() - started < 30
    assert expected in job.log
    assert "Fix:" in job.log
    assert "Traceback" not in job.log
    assert not (job.job_dir / "container_runtime.json").exists()


def test_gene_requests_are_served_from_the_column_copy(runtime, tmp_path):
    import scipy.sparse as sp

    rng = np.random.default_rng(7)
    n_cells, n_genes = 600, 80
    X = sp.random(n_cells, n_genes, density=0.2, format="csr", dtype=np.float32, random_state=rng)
    adata = ad.AnnData(
        X,
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]),
    )
    adata.obsm["X_umap"] = rng.normal(size=(n_cells, 2)).astype(np.float32)
    path = tmp_path / "csr.h5ad"
    adata.write_h5ad(path)

    job = runtime(path)
    wait_until(lambda: job.client.status()["column_copy"] == "ready", 60, "the column copy", job.proc)
    for gene in (0, 41, n_genes - 1):
        np.testing.assert_array_equal(job.client.expression(f"g{gene}"), X[:, gene].toarray().ravel())


def test_differential_expression_is_bounded_per_session(runtime):
    job = runtime(DEMO, "--diffexp-max-cells", "100")
    assert job.client.config()["limits"]["diffexp_cellcount_max"] == 100
    small = job.client.diffexp(range(0, 40), range(40, 80))
    assert small.ok, small.text
    assert len(small.json()["positive"]) > 0
    too_big = job.client.diffexp(range(0, 60), range(60, 120))
    assert too_big.status_code == 400
    assert "limit" in too_big.text.lower()
