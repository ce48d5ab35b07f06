"""prepare: hand cellxgene a `.h5ad` without copying the matrix."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from galaxy_cellxgene.prepare import prepare, unique_names
from galaxy_cellxgene.settings import ViewerOptions
from support.h5ad_builders import N_CELLS, build_adata, with_obsm


def galaxy_dataset(path: Path) -> Path:
    """Galaxy stores datasets as dataset_N.dat, a name cellxgene refuses."""
    dat = path.with_name("dataset_42.dat")
    path.rename(dat)
    return dat


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dense(matrix) -> np.ndarray:
    return matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)


def narrow_adata() -> ad.AnnData:
    """Nothing for cellxgene to skip: no layers, every embedding two-dimensional."""
    adata = build_adata()
    return with_obsm(adata, X_umap=adata.obsm["X_umap"])


@pytest.fixture
def narrow_h5ad(make_h5ad: Callable[..., Path]) -> Path:
    return make_h5ad(narrow_adata(), name="narrow")


def test_symlink_when_nothing_changes(narrow_h5ad: Path, tmp_path: Path) -> None:
    source = galaxy_dataset(narrow_h5ad)
    prepared = prepare(source, tmp_path / "work", ViewerOptions())
    assert not prepared.linked
    assert prepared.path.suffix == ".h5ad"
    assert prepared.path.is_symlink()
    assert prepared.path.resolve() == source.resolve()
    # Also for the options cellxgene applies itself.
    again = prepare(source, tmp_path / "work", ViewerOptions(obs_names="barcode", var_names="gene_symbols"))
    assert not again.linked and again.path.is_symlink()


def test_prepare_twice_replaces_the_previous_result(layers_h5ad: Path, narrow_h5ad: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    first = prepare(layers_h5ad, work, ViewerOptions())
    assert first.linked
    second = prepare(narrow_h5ad, work, ViewerOptions())
    assert second.path == first.path and second.path.is_symlink()
    assert second.path.resolve() == narrow_h5ad.resolve()
    assert sorted(p.name for p in work.iterdir()) == ["dataset.h5ad"]  # no temp file left


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (ViewerOptions(), "leaving out what cellxgene does not show"),
        (ViewerOptions(layer="counts"), "layer 'counts' as X"),
        (ViewerOptions(make_var_names_unique=True, layer="scaled"), "unique gene names, layer 'scaled' as X"),
    ],
)
def test_linked_file_when_layers_are_present(
    layers_h5ad: Path, tmp_path: Path, options: ViewerOptions, reason: str
) -> None:
    prepared = prepare(galaxy_dataset(layers_h5ad), tmp_path / "work", options)
    assert prepared.linked
    assert reason in prepared.reason
    assert not prepared.path.is_symlink()
    with h5py.File(prepared.path, "r") as f:
        assert "layers" not in f  # cellxgene would load them into memory and never show them


def test_layer_becomes_x(layers_h5ad: Path, tmp_path: Path) -> None:
    before = digest(layers_h5ad)
    original = ad.read_h5ad(layers_h5ad)
    for layer in ("counts", "scaled"):
        prepared = prepare(layers_h5ad, tmp_path / layer, ViewerOptions(layer=layer))
        shown = ad.read_h5ad(prepared.path)
        assert np.array_equal(dense(shown.X), dense(original.layers[layer]))
        assert not np.array_equal(dense(shown.X), dense(original.X))
        assert list(shown.obs_names) == list(original.obs_names)
        assert list(shown.var_names) == list(original.var_names)
        assert np.array_equal(shown.obsm["X_umap"], original.obsm["X_umap"])
        assert list(shown.obs["louvain"]) == list(original.obs["louvain"])
    assert digest(layers_h5ad) == before


def test_x_is_an_external_link_not_a_copy(layers_h5ad: Path, tmp_path: Path) -> None:
    prepared = prepare(layers_h5ad, tmp_path / "work", ViewerOptions(layer="counts"))
    with h5py.File(prepared.path, "r") as f:
        link = f.get("X", getlink=True)
    assert isinstance(link, h5py.ExternalLink)
    assert Path(link.filename).is_absolute()  # cellxgene's working directory is not ours
    assert Path(link.filename) == layers_h5ad.resolve()
    assert link.path == "/layers/counts"


def test_x_kept_when_layers_are_left_out(layers_h5ad: Path, tmp_path: Path) -> None:
    prepared = prepare(layers_h5ad, tmp_path / "work", ViewerOptions())
    shown, original = ad.read_h5ad(prepared.path), ad.read_h5ad(layers_h5ad)
    assert np.array_equal(dense(shown.X), dense(original.X))
    assert dict(shown.uns) == dict(original.uns)


@pytest.mark.parametrize("dense_x", [False, True])
def test_make_unique_with_anndatas_suffix_rule(
    duplicate_var_h5ad: Path, tmp_path: Path, make_h5ad: Callable[..., Path], dense_x: bool
) -> None:
    source = duplicate_var_h5ad if not dense_x else make_h5ad(_with_duplicate_var(build_adata(dense=True)))
    original = ad.read_h5ad(source)
    prepared = prepare(source, tmp_path / "work", ViewerOptions(make_var_names_unique=True))
    assert prepared.linked and "unique gene names" in prepared.reason
    shown = ad.read_h5ad(prepared.path)
    first = original.var_names[0]
    assert list(shown.var_names[:3]) == [first, f"{first}-1", f"{first}-2"]
    assert shown.var_names.is_unique
    assert list(shown.var_names[3:]) == list(original.var_names[3:])
    assert np.array_equal(dense(shown.X), dense(original.X))
    # The gene-symbol column itself is kept as it was.
    assert list(shown.var["gene_symbols"]) == list(original.var["gene_symbols"])


def _with_duplicate_var(adata: ad.AnnData) -> ad.AnnData:
    names = list(adata.var_names)
    names[1] = names[2] = names[0]
    adata.var_names = names
    return adata


def test_make_unique_from_a_symbol_column(duplicate_symbols_h5ad: Path, tmp_path: Path) -> None:
    options = ViewerOptions(var_names="gene_symbols", make_var_names_unique=True)
    shown = ad.read_h5ad(prepare(duplicate_symbols_h5ad, tmp_path / "work", options).path)
    names = list(shown.var_names)
    assert names[:3] == ["SYM0", "SYM1", "SYM2"]
    # MALAT1 twice next to an existing MALAT1-1: anndata steps over the taken name.
    assert names[3] == "MALAT1"
    assert names[4] not in ("MALAT1", "MALAT1-1") and names[4].startswith("MALAT1-")
    assert names[5] == "MALAT1-1"
    assert shown.var_names.is_unique
    symbols = ad.read_h5ad(duplicate_symbols_h5ad).var["gene_symbols"].astype(str)
    assert names == list(ad.utils.make_index_unique(pd.Index(symbols)))


def test_unique_names_rule() -> None:
    assert unique_names(["a", "b", "a", "a", "c"]) == ["a", "b", "a-1", "a-2", "c"]
    assert unique_names(["x", "y"]) == ["x", "y"]


def test_prepared_file_opens_in_cellxgene(layers_h5ad: Path, tmp_path: Path) -> None:
    # The reader cellxgene itself uses (its AnnData adaptor reads the whole file, X through the link).
    from server.common.config.app_config import AppConfig

    prepared = prepare(layers_h5ad, tmp_path / "work", ViewerOptions(layer="counts"))
    config = AppConfig()
    config.update_server_config(
        app__flask_secret_key="k", single_dataset__datapath=str(prepared.path), app__open_browser=False
    )
    config.update_dataset_config(X_approximate_distribution="count")
    config.complete_config(lambda message: None)
    adaptor = config.server_config.data_adaptor
    assert adaptor.get_shape() == (N_CELLS, 30)
    assert np.array_equal(dense(adaptor.data.X), dense(ad.read_h5ad(layers_h5ad).layers["counts"]))


def test_small_file_does_not_grow_with_the_matrix(make_h5ad: Callable[..., Path], tmp_path: Path) -> None:
    sizes = {}
    inputs = {}
    for n_cells in (N_CELLS, 20_000):
        source = make_h5ad(build_adata(n_cells, 200, dense=True, layers=("counts",)), name=f"big{n_cells}")
        prepared = prepare(source, tmp_path / f"work{n_cells}", ViewerOptions(layer="counts"))
        sizes[n_cells] = prepared.path.stat().st_size
        inputs[n_cells] = source.stat().st_size
    matrix_growth = (20_000 - N_CELLS) * 200 * 4  # one float32 X and its layer cell by cell: >= 15 MB
    small_growth = sizes[20_000] - sizes[N_CELLS]
    assert inputs[20_000] - inputs[N_CELLS] > matrix_growth
    # What remains grows with the cells' metadata (names, 2 embeddings, 3 obs columns), not the matrix.
    assert small_growth < matrix_growth / 5, (sizes, inputs)


def test_failed_preparation_leaves_nothing_behind(good_h5ad: Path, tmp_path: Path) -> None:
    # validate refuses a missing column first; prepare must still not leave a half-written file.
    work = tmp_path / "work"
    with pytest.raises(KeyError):
        prepare(good_h5ad, work, ViewerOptions(var_names="nope", make_var_names_unique=True))
    assert list(work.iterdir()) == []


def test_wide_embeddings_keep_the_two_drawn_dimensions(good_h5ad: Path, tmp_path: Path) -> None:
    original = ad.read_h5ad(good_h5ad)
    assert original.obsm["X_pca"].shape[1] > 2
    prepared = prepare(good_h5ad, tmp_path / "work", ViewerOptions())
    assert prepared.linked and "extra dimensions" in prepared.reason
    with h5py.File(prepared.path, "r") as f:
        assert f["obsm"].get("X_umap", getlink=True).__class__ is h5py.ExternalLink  # narrow: linked
    shown = ad.read_h5ad(prepared.path)
    np.testing.assert_array_equal(shown.obsm["X_pca"], original.obsm["X_pca"][:, :2])
    np.testing.assert_array_equal(shown.obsm["X_umap"], original.obsm["X_umap"])
