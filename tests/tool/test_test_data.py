"""test-data/ is what it claims: small, big enough for a real browser, and broken where named.

"Broken" is judged by the real cellxgene 1.3.0 loader and reader code, not by our runtime,
so a runtime check that goes soft cannot make its own test data look fine.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST_DATA = ROOT / "test-data"
DEMO = TEST_DATA / "pbmc_demo.h5ad"
MAX_BYTES = 1_000_000
# Below ~150 cells cellxgene's binary responses break in a real browser (bytearray bug).
MIN_CELLS = 200

# What cellxgene itself says when it loads each broken dataset (measured with 1.3.0).
REFUSED_BY_CELLXGENE = {
    "broken_not_hdf5.h5ad": ("DatasetAccessError", "File must be an .h5ad object"),
    "broken_not_anndata.h5ad": ("DatasetAccessError", "File must be an .h5ad object"),
    "broken_no_embedding.h5ad": ("PrepareError", "No valid layout data"),
    "broken_embedding_no_prefix.h5ad": ("PrepareError", "No valid layout data"),
    "broken_embedding_inf.h5ad": ("PrepareError", "No valid layout data"),
    "broken_embedding_all_nan.h5ad": ("PrepareError", "No valid layout data"),
    "broken_duplicate_obs_names.h5ad": ("KeyError", "Values in obs.index must be unique"),
    "broken_duplicate_var_names.h5ad": ("KeyError", "Values in var.index must be unique"),
}
# Files anndata cannot read as they are (the last one on purpose: part of it points at a file that cannot exist).
NOT_ANNDATA = {"broken_not_hdf5.h5ad", "broken_not_anndata.h5ad", "broken_outside_link.h5ad"}


def read_h5ad(path: Path) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.read_h5ad(path)


def read_labels(path: Path) -> pd.DataFrame:
    # Exactly how cellxgene 1.3.0 reads its own labels file (server/common/annotations).
    return pd.read_csv(path, dtype="category", index_col=0, header=0, comment="#", keep_default_na=False)


def cellxgene_load(path: Path, tmp_path: Path) -> None:
    """Load a dataset the way `cellxgene launch` does; raises what cellxgene raises."""
    from server.cli.launch import CliLaunchServer
    from server.common.config.app_config import AppConfig

    link = tmp_path / "data.h5ad"  # cellxgene refuses paths that do not end in .h5ad
    link.symlink_to(path.resolve())
    config = AppConfig()
    config.update_server_config(single_dataset__datapath=str(link), app__flask_secret_key="test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config.complete_config(lambda message: None)
        CliLaunchServer(config)


def all_files() -> list[Path]:
    return sorted(p for p in TEST_DATA.iterdir() if p.is_file())


def test_expected_files_exist() -> None:
    names = {p.name for p in all_files()}
    expected = {
        "pbmc_demo.h5ad",
        "pbmc_demo_annotations.csv",
        "pbmc_demo_gene_sets.csv",
        "broken_annotations_other_dataset.csv",
        "broken_annotations_clash.csv",
        "broken_annotations_malformed.csv",
        "broken_gene_sets_malformed.csv",
        *REFUSED_BY_CELLXGENE,
    }
    assert expected <= names, f"missing: {sorted(expected - names)}"


@pytest.mark.parametrize("path", all_files(), ids=lambda p: p.name)
def test_every_file_is_under_1_mb(path: Path) -> None:
    assert path.stat().st_size < MAX_BYTES, f"{path.name}: {path.stat().st_size} bytes"


@pytest.mark.parametrize(
    "path", [p for p in all_files() if p.suffix == ".h5ad" and p.name not in NOT_ANNDATA], ids=lambda p: p.name
)
def test_every_dataset_has_enough_cells(path: Path) -> None:
    with h5py.File(path, "r") as f:
        n_obs = f["X"].shape[0] if isinstance(f["X"], h5py.Dataset) else f["X"].attrs["shape"][0]
    assert n_obs >= MIN_CELLS, f"{path.name}: {n_obs} cells"


def test_demo_is_a_real_viewer_ready_dataset(tmp_path: Path) -> None:
    demo = read_h5ad(DEMO)
    assert demo.shape == (320, 300)
    assert {"X_umap", "X_pca"} <= set(demo.obsm)
    assert np.isfinite(demo.obsm["X_umap"]).all()
    assert {"louvain", "bulk_labels", "cell_id"} <= set(demo.obs.columns)
    assert demo.obs["cell_id"].is_unique, "cell_id is the valid --obs-names choice"
    assert demo.obs_names.is_unique and demo.var_names.is_unique
    # The make-unique path needs repeats in the symbol column, and only there.
    assert demo.var["gene_symbols"].duplicated().sum() == 3
    assert "lognorm" in demo.layers and demo.layers["lognorm"].shape == demo.shape
    # Real PBMC data, not noise: known marker genes are present.
    assert {"CD3D", "MS4A1", "LYZ", "NKG7"} <= set(demo.var_names)
    cellxgene_load(DEMO, tmp_path)


@pytest.mark.parametrize("name", sorted(REFUSED_BY_CELLXGENE))
def test_broken_dataset_is_refused_by_cellxgene(name: str, tmp_path: Path) -> None:
    error_class, message = REFUSED_BY_CELLXGENE[name]
    with pytest.raises(Exception) as caught:
        cellxgene_load(TEST_DATA / name, tmp_path)
    assert type(caught.value).__name__ == error_class
    assert message in str(caught.value)


def test_demo_annotations_are_cellxgene_labels_for_the_demo() -> None:
    path = TEST_DATA / "pbmc_demo_annotations.csv"
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# Annotations generated on") and lines[1].startswith("# Input data file")
    assert lines[2] == "index,cell_type,review"
    labels = read_labels(path)
    demo = read_h5ad(DEMO)
    assert list(labels.index) == list(demo.obs_names)
    assert "unassigned" in set(labels["review"])
    assert labels["cell_type"].nunique() > 3


def test_demo_gene_sets_are_cellxgene_gene_sets_for_the_demo() -> None:
    from server.common.genesets import read_gene_sets_tidycsv, validate_gene_sets
    from server.common.utils.data_locator import DataLocator

    path = TEST_DATA / "pbmc_demo_gene_sets.csv"
    raw = path.read_bytes()
    comments, rows = raw.split(b"\n", 2)[:2], raw.split(b"\n", 2)[2]
    # cellxgene writes LF comment lines, then CRLF rows (csv's excel dialect).
    assert all(c.startswith(b"#") and not c.endswith(b"\r") for c in comments)
    assert rows.startswith(b"gene_set_name,gene_set_description,gene_symbol,gene_description\r\n")
    gene_sets = read_gene_sets_tidycsv(DataLocator(str(path)))
    assert set(gene_sets) == {"T cells", "B cells", "Monocytes", "NK cells"}
    validate_gene_sets(gene_sets, read_h5ad(DEMO).var_names)


def test_annotations_of_another_dataset_would_fool_cellxgene() -> None:
    """Same row count, other cell names: cellxgene alone would assign them by position."""
    labels = read_labels(TEST_DATA / "broken_annotations_other_dataset.csv")
    demo = read_h5ad(DEMO)
    assert len(labels) == demo.n_obs
    assert not set(labels.index) & set(demo.obs_names)


def test_clashing_annotations_reuse_an_obs_column_name() -> None:
    labels = read_labels(TEST_DATA / "broken_annotations_clash.csv")
    demo = read_h5ad(DEMO)
    assert list(labels.index) == list(demo.obs_names)
    assert set(labels.columns) & set(demo.obs.columns) == {"louvain"}


def test_malformed_annotations_do_not_parse() -> None:
    with pytest.raises(pd.errors.ParserError, match="line 11"):
        read_labels(TEST_DATA / "broken_annotations_malformed.csv")


def test_malformed_gene_sets_are_refused_by_cellxgene() -> None:
    from server.common.errors import AnnotationsError
    from server.common.genesets import read_gene_sets_tidycsv
    from server.common.utils.data_locator import DataLocator

    with pytest.raises(AnnotationsError, match="header"):
        read_gene_sets_tidycsv(DataLocator(str(TEST_DATA / "broken_gene_sets_malformed.csv")))


def test_not_hdf5_is_really_text() -> None:
    path = TEST_DATA / "broken_not_hdf5.h5ad"
    assert not h5py.is_hdf5(path)
    next(csv.reader(path.open()))  # plain CSV text


def test_outside_link_differs_from_a_good_dataset_only_in_one_uns_entry() -> None:
    """A viewable dataset but for a colour list that is an external link to a file that cannot exist."""
    with h5py.File(TEST_DATA / "broken_outside_link.h5ad") as f:
        link = f.get("uns/louvain_colors", getlink=True)
        assert isinstance(link, h5py.ExternalLink) and link.filename.startswith("/nonexistent/")
        assert not Path(link.filename).exists()
        assert {"X", "obs", "var", "obsm"} <= set(f)
        assert f["obsm/X_umap"].shape == (MIN_CELLS, 2)


@pytest.mark.slow
def test_make_test_data_reproduces_test_data(tmp_path: Path) -> None:
    """The committed files are exactly what the script makes (content; HDF5 bytes carry timestamps)."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "data" / "make_test_data.py"), "--out", str(tmp_path)], check=True
    )
    made = {p.name for p in tmp_path.iterdir()}
    assert made == {p.name for p in all_files()}
    for name in sorted(made):
        ours, theirs = TEST_DATA / name, tmp_path / name
        if name.endswith(".csv") or name in NOT_ANNDATA:
            if name == "broken_not_anndata.h5ad":
                with h5py.File(ours) as a, h5py.File(theirs) as b:
                    assert list(a) == list(b) and (a["matrix"][()] == b["matrix"][()]).all()
            elif name == "broken_outside_link.h5ad":
                with h5py.File(ours) as a, h5py.File(theirs) as b:
                    assert list(a) == list(b)
                    link_a = a.get("uns/louvain_colors", getlink=True)
                    link_b = b.get("uns/louvain_colors", getlink=True)
                    assert (link_a.filename, link_a.path) == (link_b.filename, link_b.path)
            else:
                assert ours.read_bytes() == theirs.read_bytes(), name
            continue
        a, b = read_h5ad(ours), read_h5ad(theirs)
        assert a.shape == b.shape, name
        np.testing.assert_array_equal(np.asarray(a.X), np.asarray(b.X), err_msg=name)
        pd.testing.assert_frame_equal(a.obs, b.obs, obj=f"{name} obs")
        pd.testing.assert_frame_equal(a.var, b.var, obj=f"{name} var")
        assert set(a.obsm) == set(b.obsm) and set(a.layers) == set(b.layers), name
        for key in a.obsm:
            np.testing.assert_array_equal(a.obsm[key], b.obsm[key], err_msg=f"{name} obsm {key}")
