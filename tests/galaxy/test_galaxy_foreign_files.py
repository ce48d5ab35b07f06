"""Issue 23 in the real Galaxy: files other projects write, uploaded as h5ad.

A CELLxGENE Discover-shaped file (made here from the schema-5 fields): the gene-symbol select
offers "the gene index" beside the var columns, and left empty the viewer names genes by their
symbols (feature_name). scanpy's bundled PBMC data (anndata < 0.7 layout, fetched pinned from
PyPI): the viewer opens it through Galaxy's proxy and Finish hands back a merged h5ad in the
current layout that anndata reads with every original obs column and the labels.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import h5py
import pytest
from galaxy_cellxgene_testkit.entry_points import open_viewer, start_viewer
from support.discover_shaped import make
from support.foreign_corpus import fetch_all, manifest_files
from support.galaxy_fixture import LocalGalaxy, form_options

pytestmark = [pytest.mark.galaxy, pytest.mark.slow, pytest.mark.timeout(1800)]
CATEGORY = "foreign_label"
JOB_TIMEOUT = 600


def test_discover_file_offers_the_index_and_opens_with_symbols(
    galaxy: LocalGalaxy, galaxy_history: str, tmp_path: Path
) -> None:
    path = make(tmp_path / "discover.h5ad")
    uploaded = galaxy.upload_and_wait(galaxy_history, path, name="discover.h5ad", ext="h5ad")
    options = form_options(galaxy, galaxy_history, uploaded["id"])
    assert {"feature_name", "__index__"} <= set(options["var_names"]), options["var_names"]

    job, _ = start_viewer(galaxy, galaxy_history, uploaded["id"])
    _, ui = open_viewer(galaxy, job["id"])
    schema = ui.schema()
    assert schema["annotations"]["var"]["index"] == "feature_name"
    assert ui.expression("CD3E").shape == (schema["dataframe"]["nObs"],)
    galaxy.finish_viewer(ui, job["id"], JOB_TIMEOUT)


def test_scanpys_pbmc_data_opens_and_merges_in_the_current_layout(
    galaxy: LocalGalaxy, galaxy_history: str, tmp_path: Path
) -> None:
    entry = next(e for e in manifest_files() if e["name"] == "scanpy_pbmc68k_reduced")
    source = fetch_all()[entry["sha256"]]
    uploaded = galaxy.upload_and_wait(galaxy_history, source, name="pbmc68k_reduced.h5ad", ext="h5ad")
    assert galaxy.dataset(uploaded["id"])["state"] == "ok"
    job, outputs = start_viewer(galaxy, galaxy_history, uploaded["id"])
    _, ui = open_viewer(galaxy, job["id"])
    n_obs = ui.schema()["dataframe"]["nObs"]
    assert n_obs == 700
    assert ui.expression("CD3D").shape == (n_obs,)
    labels = [("a", "b", "unassigned")[i % 3] for i in range(n_obs)]
    ui.save_labels({CATEGORY: labels})
    galaxy.finish_viewer(ui, job["id"], JOB_TIMEOUT)

    elements = galaxy.collection(outputs["annotated"])["elements"]
    merged = galaxy.download(elements[0]["object"]["id"], tmp_path / "merged.h5ad")
    with h5py.File(merged) as f:
        assert f["obs"].attrs["encoding-type"] == "dataframe"
    adata, original = ad.read_h5ad(merged), ad.read_h5ad(source)
    assert [str(v) for v in adata.obs[CATEGORY]] == labels
    assert set(original.obs.columns) <= set(adata.obs.columns)
