"""The subset writer: the file it writes reads back as anndata's own `adata[mask].copy()`, every part,
for dense, CSR and CSC matrices, in blocks far smaller than the matrix; bad input is refused by name."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from galaxy_cellxgene.containment import OutsideData
from galaxy_cellxgene.labels import read_labels
from galaxy_cellxgene.merge import add_labels_to_obs
from galaxy_cellxgene.subset import SubsetError, SubsetSource, label_choices, subset_title
from galaxy_cellxgene.subset_matrix import MatrixError
from support.anndata_compare import assert_same_anndata
from support.h5ad_builders import build_adata, cell_types

TINY_BLOCKS = 64  # bytes: a few values per block, so every matrix is copied in many blocks


def rich_adata(fmt: str) -> ad.AnnData:
    """Every part anndata subsets: X (in `fmt`), layers, raw with more genes, obsm, obsp, varm, varp, uns."""
    full = build_adata(n_vars=40, layers=("counts",), dense=fmt == "dense")
    full.raw = full
    adata = full[:, :30].copy()
    if fmt == "csc":
        adata.X = sp.csc_matrix(adata.X)
        adata.layers["counts"] = sp.csc_matrix(adata.layers["counts"])
    adata.layers["dense"] = np.arange(adata.n_obs * adata.n_vars, dtype=np.float64).reshape(adata.shape)
    rng = np.random.default_rng(1)
    adata.obsp["connectivities"] = sp.random(adata.n_obs, adata.n_obs, density=0.05, format="csr", random_state=2)
    adata.obsp["distances"] = rng.normal(size=(adata.n_obs, adata.n_obs))
    adata.varm["PCs"] = rng.normal(size=(adata.n_vars, 3))
    adata.varp["corr"] = rng.normal(size=(adata.n_vars, adata.n_vars))
    adata.obs["score"] = rng.normal(size=adata.n_obs)
    adata.obs["phase"] = pd.Categorical(["G1", "S", "G2M", "rare"][i % 4] if i < 199 else "rare" for i in range(200))
    adata.uns["louvain_colors"] = np.array(["#111111", "#222222", "#333333", "#444444", "#555555"], dtype=object)
    adata.uns["neighbors"] = {"params": {"n_neighbors": 15, "method": "umap"}}
    return adata


def labels_file(tmp_path: Path, adata: ad.AnnData) -> Path:
    path = tmp_path / "labels.csv"
    frame = pd.DataFrame({"cell_type": cell_types(adata.n_obs)}, index=pd.Index(adata.obs_names, name="index"))
    path.write_text("# a\n# b\n" + frame.to_csv())
    return path


def expected(source: Path, labels: pd.DataFrame | None, mask: np.ndarray) -> ad.AnnData:
    adata = ad.read_h5ad(source)
    if labels is not None:
        adata.obs = add_labels_to_obs(adata.obs, labels)
    return adata[mask].copy()


@pytest.mark.parametrize("fmt", ["csr", "csc", "dense"])
def test_subset_equals_anndata_own_subset(tmp_path: Path, fmt: str) -> None:
    adata = rich_adata(fmt)
    source = tmp_path / "in.h5ad"
    adata.write_h5ad(source)
    labels = read_labels(labels_file(tmp_path, adata))

    subset = SubsetSource.read(source, labels)
    mask = subset.mask("cell_type", ["T cells"])
    out = tmp_path / "out.h5ad"
    written = subset.write(mask, out, block_bytes=TINY_BLOCKS)

    want = expected(source, labels, mask)
    got = ad.read_h5ad(out)
    assert written == want.n_obs == int((np.array(cell_types()) == "T cells").sum())
    assert_same_anndata(got, want)
    assert list(got.obs_names) == list(want.obs_names)
    assert set(got.obs["cell_type"].cat.categories) == {"T cells"}  # unused categories go, as in anndata
    # the matrices keep their storage format
    assert type(got.X) is type(want.X) and type(got.layers["counts"]) is type(want.layers["counts"])
    assert got.raw is not None and got.raw.shape == (want.n_obs, 40)


def test_obs_column_and_several_labels_with_colours(tmp_path: Path) -> None:
    adata = rich_adata("csr")
    source = tmp_path / "in.h5ad"
    adata.write_h5ad(source)
    subset = SubsetSource.read(source)
    mask = subset.mask("louvain", ["CD4 T", "NK"])
    out = tmp_path / "out.h5ad"
    subset.write(mask, out, block_bytes=TINY_BLOCKS)
    got = ad.read_h5ad(out)
    assert_same_anndata(got, expected(source, None, mask))
    assert list(got.obs["louvain"].cat.categories) == ["CD4 T", "NK"]
    assert list(got.uns["louvain_colors"]) == ["#222222", "#555555"]  # colours follow their categories


def test_choices_offer_label_columns_not_numbers(tmp_path: Path) -> None:
    adata = rich_adata("csr")
    source = tmp_path / "in.h5ad"
    adata.write_h5ad(source)
    choices = SubsetSource.read(source, read_labels(labels_file(tmp_path, adata))).choices()
    assert choices["cell_type"] == ["B cells", "T cells", "unassigned"]
    assert choices["louvain"][:2] == ["B cells", "CD4 T"]
    assert "score" not in choices and "n_counts" not in choices
    assert label_choices(pd.DataFrame({"id": [f"c{i}" for i in range(5)]}), limit=3) == {}


def test_title_names_labels_and_count() -> None:
    assert subset_title("pbmc.h5ad", ["T cells"], 2301) == "cellxgene on pbmc.h5ad: T cells (2,301 cells)"


@pytest.mark.parametrize(
    ("category", "chosen", "words"),
    [("nope", ["x"], "no category 'nope'"), ("louvain", ["Martians"], "'Martians'"), ("score", ["1"], "numbers")],
)
def test_bad_choice_is_named(tmp_path: Path, category: str, chosen: list[str], words: str) -> None:
    source = tmp_path / "in.h5ad"
    rich_adata("csr").write_h5ad(source)
    with pytest.raises(SubsetError, match=words) as err:
        SubsetSource.read(source).mask(category, chosen)
    assert err.value.fix


def test_out_of_bounds_index_is_refused_not_written(tmp_path: Path) -> None:
    source = tmp_path / "in.h5ad"
    rich_adata("csr").write_h5ad(source)
    with h5py.File(source, "r+") as f:
        f["X/indices"][3] = 10_000  # scipy would trust this and write past the row
    subset = SubsetSource.read(source)
    out = tmp_path / "out.h5ad"
    with pytest.raises(MatrixError, match="index lies outside"):
        subset.write(np.ones(200, dtype=bool), out, block_bytes=TINY_BLOCKS)
    assert not out.exists() and not list(tmp_path.glob(".subset-*"))


def test_falling_indptr_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "in.h5ad"
    rich_adata("csr").write_h5ad(source)
    with h5py.File(source, "r+") as f:
        f["layers/counts/indptr"][5] = 0
    with pytest.raises(MatrixError, match="layers/counts is damaged"):
        SubsetSource.read(source).write(np.ones(200, dtype=bool), tmp_path / "out.h5ad")


def test_outside_part_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["data"] = np.arange(10)
    source = tmp_path / "in.h5ad"
    rich_adata("csr").write_h5ad(source)
    with h5py.File(source, "r+") as f:
        f["uns/leak"] = h5py.ExternalLink(str(secret), "data")
    with pytest.raises(OutsideData):
        SubsetSource.read(source)


def test_merge_command_writes_one_dataset_per_label(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from galaxy_cellxgene.cli import main

    adata = rich_adata("csr")
    source = tmp_path / "in.h5ad"
    adata.write_h5ad(source)
    labels = labels_file(tmp_path, adata)
    chosen = tmp_path / "chosen.txt"
    chosen.write_text("T cells\nB cells\n")
    out = tmp_path / "subsets"
    argv = ["merge", str(source), f"--annotations={labels}", "--subset-by=cell_type"]
    assert main([*argv, f"--subset-labels-file={chosen}", f"--subsets-dir={out}"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["B_cells.h5ad", "T_cells.h5ad"]
    merged = read_labels(labels)
    for label in ("T cells", "B cells"):
        mask = np.array(cell_types()) == label
        assert_same_anndata(ad.read_h5ad(out / f"{label.replace(' ', '_')}.h5ad"), expected(source, merged, mask))
    # a label no cell carries: refused by name, before any file is written
    assert main([*argv, "--subset-label=Martians", f"--subsets-dir={tmp_path / 'none'}"]) == 2
    assert "'Martians'" in capsys.readouterr().err and not (tmp_path / "none").exists()
