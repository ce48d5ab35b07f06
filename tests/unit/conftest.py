"""Fixtures that build small h5ad datasets in tmp_path, good and broken (each broken one has one problem)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from support.h5ad_builders import N_CELLS, NAN_ROWS, build_adata, cell_names, labels_text, with_obsm

# Property tests: a quick, repeatable run by default (CI shares 2 cores); HYPOTHESIS_PROFILE=thorough
# searches much wider, e.g. before changing labels.py.
settings.register_profile(
    "unit", max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "unit"))


@pytest.fixture(autouse=True)
def _quiet_anndata() -> Iterator[None]:
    # anndata's "names are not unique" chatter is the point of several fixtures, not news.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", module="anndata")  # OldFormatWarning on the damaged files
        yield


@pytest.fixture
def make_h5ad(tmp_path: Path) -> Callable[..., Path]:
    """Write an AnnData (or `build_adata(**kwargs)`) into tmp_path; returns the file's path."""
    counter = iter(range(1_000_000))

    def make(adata: ad.AnnData | None = None, name: str | None = None, **kwargs) -> Path:
        adata = build_adata(**kwargs) if adata is None else adata
        path = tmp_path / f"{name or f'data{next(counter)}'}.h5ad"
        adata.write_h5ad(path)
        return path

    return make


@pytest.fixture
def good_h5ad(make_h5ad: Callable[..., Path]) -> Path:
    return make_h5ad(name="good")


@pytest.fixture
def layers_h5ad(make_h5ad: Callable[..., Path]) -> Path:
    return make_h5ad(build_adata(layers=("counts", "scaled")), name="layers")


@pytest.fixture
def write_labels(tmp_path: Path) -> Callable[..., Path]:
    """Write a cellxgene cell-labels CSV for the 200 standard cells (or the given ones)."""

    def write(categories: dict[str, list[str]], cells: list[str] | None = None, name: str = "labels") -> Path:
        path = tmp_path / f"{name}.csv"
        path.write_text(labels_text(cell_names() if cells is None else cells, categories), encoding="utf-8")
        return path

    return write


# ---- broken inputs ----


@pytest.fixture
def empty_file(tmp_path: Path) -> Path:
    path = tmp_path / "empty.h5ad"
    path.write_bytes(b"")
    return path


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "table.h5ad"
    path.write_text("gene,cell1,cell2\nCD4,1,0\n")
    return path


@pytest.fixture
def plain_hdf5(tmp_path: Path) -> Path:
    """HDF5 but not AnnData, like a 10x Genomics .h5 (one `matrix` group)."""
    path = tmp_path / "tenx.h5ad"
    with h5py.File(path, "w") as f:
        f.create_group("matrix").create_dataset("data", data=np.arange(10))
    return path


@pytest.fixture
def no_embedding_h5ad(make_h5ad: Callable[..., Path]) -> Path:
    return make_h5ad(with_obsm(build_adata()), name="no_embedding")


@pytest.fixture
def unprefixed_embedding_h5ad(make_h5ad: Callable[..., Path]) -> Path:
    adata = build_adata()
    return make_h5ad(with_obsm(adata, umap=adata.obsm["X_umap"]), name="unprefixed")


@pytest.fixture
def all_nan_embedding_h5ad(make_h5ad: Callable[..., Path]) -> Path:
    adata = build_adata()
    return make_h5ad(with_obsm(adata, X_umap=np.full((N_CELLS, 2), np.nan, np.float32)), name="all_nan")


@pytest.fixture
def inf_embedding_h5ad(make_h5ad: Callable[..., Path]) -> Path:
    adata = build_adata()
    coords = adata.obsm["X_umap"].copy()
    coords[7, 1] = np.inf
    return make_h5ad(with_obsm(adata, X_umap=coords), name="inf")


@pytest.fixture
def nan_rows_h5ad(make_h5ad: Callable[..., Path]) -> Path:
    adata = build_adata()
    coords = adata.obsm["X_umap"].copy()
    coords[:NAN_ROWS, 0] = np.nan
    return make_h5ad(with_obsm(adata, X_umap=coords), name="nan_rows")


@pytest.fixture
def duplicate_obs_h5ad(make_h5ad: Callable[..., Path]) -> Path:
    adata = build_adata()
    adata.obs_names = ["cell0", *adata.obs_names[:-1]]  # cell0 twice
    return make_h5ad(adata, name="dup_obs")


@pytest.fixture
def duplicate_var_h5ad(make_h5ad: Callable[..., Path]) -> Path:
    adata = build_adata()
    names = list(adata.var_names)
    names[1] = names[2] = names[0]
    adata.var_names = names
    return make_h5ad(adata, name="dup_var")


@pytest.fixture
def duplicate_symbols_h5ad(make_h5ad: Callable[..., Path]) -> Path:
    """Unique var index, but the gene-symbol column repeats (MALAT1 twice is common in real data)."""
    adata = build_adata()
    symbols = list(adata.var["gene_symbols"])
    symbols[3] = symbols[4] = "MALAT1"
    symbols[5] = "MALAT1-1"  # anndata's suffix rule must step over a name that already exists
    adata.var["gene_symbols"] = symbols
    return make_h5ad(adata, name="dup_symbols")
