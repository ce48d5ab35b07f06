"""Issue 13 in the real Galaxy: a dataset written by the newest anndata (0.13, pandas 3, Python 3.13).

Such a file stores the obs/var index and every string column as `nullable-string-array`
groups. Uploaded as h5ad, Galaxy's own metadata must still fill the tool's selects (obs and
var columns, embeddings), and the viewer must open it through Galaxy's proxy, serve a gene,
take a label save and, on Finish, hand back a merged h5ad holding the labels.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import pandas as pd
import pytest
from galaxy_cellxgene_testkit.entry_points import open_viewer, start_viewer
from support.galaxy_fixture import LocalGalaxy, form_options

pytestmark = [pytest.mark.galaxy, pytest.mark.slow, pytest.mark.timeout(1800)]

NEWEST = "compat/anndata-0.13_nullable_string.h5ad"
CATEGORY = "newest_anndata_label"
JOB_TIMEOUT = 600


def test_newest_anndata_fills_the_selects_and_opens_through_the_proxy(
    galaxy: LocalGalaxy, galaxy_history: str, tmp_path: Path
) -> None:
    uploaded = galaxy.upload_test_data(galaxy_history, NEWEST, ext="h5ad")
    meta = galaxy.dataset(uploaded["id"])
    assert meta["extension"] == "h5ad" and meta["state"] == "ok"
    assert {"cell_type", "donor", "barcode"} <= set(meta["metadata_obs_layers"]), meta["metadata_obs_layers"]
    assert meta["metadata_obsm_layers"] == ["X_pca", "X_umap"]
    # (Galaxy 26.1's h5ad metadata counts the index group's two members as the cell count and
    # shape of anndata 0.13 files; the selects below do not depend on it.)

    options = form_options(galaxy, galaxy_history, uploaded["id"])
    assert {"cell_type", "donor", "barcode", "n_counts"} <= set(options["obs_names"]), options["obs_names"]
    assert "_index" not in options["obs_names"]
    assert "gene_symbol" in options["var_names"], options["var_names"]
    assert {"X_umap", "X_pca"} <= set(options["embedding"]), options["embedding"]

    job, outputs = start_viewer(galaxy, galaxy_history, uploaded["id"])
    _, ui = open_viewer(galaxy, job["id"])
    assert "<html" in ui.page().lower()
    schema = ui.schema()
    n_obs = schema["dataframe"]["nObs"]
    assert n_obs == 240
    obs_columns = {c["name"]: c for c in schema["annotations"]["obs"]["columns"]}
    assert obs_columns["donor"]["type"] == "categorical"  # a nullable string column with missing values
    expression = ui.expression("GENE0")
    assert expression.shape == (n_obs,)
    labels = [("early", "late", "unassigned")[i % 3] for i in range(n_obs)]
    ui.save_labels({CATEGORY: labels})
    galaxy.finish_viewer(ui, job["id"], JOB_TIMEOUT)

    saved = galaxy.labels(outputs["annotations"])
    assert [str(v) for v in saved[CATEGORY]] == labels
    elements = galaxy.collection(outputs["annotated"])["elements"]
    assert len(elements) == 1, elements
    merged_id = elements[0]["object"]["id"]
    assert galaxy.wait_for_dataset(merged_id)["extension"] == "h5ad"
    merged = ad.read_h5ad(galaxy.download(merged_id, tmp_path / "merged.h5ad"))
    assert isinstance(merged.obs[CATEGORY].dtype, pd.CategoricalDtype)
    assert [str(v) for v in merged.obs[CATEGORY]] == labels
    assert {"cell_type", "donor", "barcode", "n_counts"} <= set(merged.obs.columns)
