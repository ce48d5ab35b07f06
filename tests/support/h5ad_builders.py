"""Builders for small AnnData datasets and cellxgene CSV files, shared by the unit tests.

Every dataset has at least 200 cells (N_CELLS): smaller ones hit cellxgene's bytearray bug in a
real browser, and the unit tests should exercise the shapes the viewer really gets.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

N_CELLS = 200
N_GENES = 30
NAN_ROWS = 5
CLUSTERS = ["B cells", "CD4 T", "CD8 T", "Monocytes", "NK"]

# Headers as cellxgene 1.3.0 writes them: two `#` lines before the CSV header.
LABELS_HEADER = (
    "# Annotations generated on 2026-11-25T18:00:00 using cellxgene version 1.3.0\n"
    "# Input data file was /data/pbmc.h5ad, which was last modified on 2026-11-25T17:00:00\n"
)
GENE_SETS_HEADER = (
    "# Gene set generated on 2026-11-25T18:00:00 using cellxgene version 1.3.0\n"
    "# Input data file was /data/pbmc.h5ad, which was last modified on 2026-11-25T17:00:00\n"
)
GENE_SETS_CSV = (
    GENE_SETS_HEADER
    + "gene_set_name,gene_set_description,gene_symbol,gene_description\r\n"
    + "T markers,Pan T,SYM1,CD3E\r\n"
    + "T markers,Pan T,SYM2,\r\n"
    + "empty set,nothing yet,,\r\n"
)


def cell_names(n: int = N_CELLS) -> list[str]:
    return [f"cell{i}" for i in range(n)]


def build_adata(
    n_obs: int = N_CELLS,
    n_vars: int = N_GENES,
    *,
    dense: bool = False,
    layers: tuple[str, ...] = (),
    seed: int = 0,
) -> ad.AnnData:
    """A viewable dataset: unique names, categorical and numeric obs columns, X_umap and X_pca."""
    assert n_obs >= N_CELLS, "datasets under 200 cells break cellxgene's real UI"
    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.8, size=(n_obs, n_vars)).astype(np.float32)
    obs = pd.DataFrame(
        {
            "louvain": pd.Categorical([CLUSTERS[i % len(CLUSTERS)] for i in range(n_obs)]),
            "n_counts": counts.sum(axis=1).astype(np.float64),
            "barcode": [f"BC{i:06d}" for i in range(n_obs)],
        },
        index=cell_names(n_obs),
    )
    var = pd.DataFrame(
        {"gene_symbols": [f"SYM{i}" for i in range(n_vars)]},
        index=[f"ENSG{i:011d}" for i in range(n_vars)],
    )
    adata = ad.AnnData(X=counts if dense else sp.csr_matrix(counts), obs=obs, var=var)
    adata.obsm["X_umap"] = rng.normal(size=(n_obs, 2)).astype(np.float32)
    adata.obsm["X_pca"] = rng.normal(size=(n_obs, 5)).astype(np.float32)
    for i, name in enumerate(layers):
        # Distinct values per layer, so a test can tell which matrix cellxgene was given.
        adata.layers[name] = sp.csr_matrix(counts * (i + 2))
    return adata


def with_obsm(adata: ad.AnnData, **obsm: np.ndarray) -> ad.AnnData:
    """Replace every embedding by the given ones."""
    for key in list(adata.obsm.keys()):
        del adata.obsm[key]
    for key, value in obsm.items():
        adata.obsm[key] = value
    return adata


def labels_text(cells: list[str], categories: dict[str, list[str]], index_name: str = "index") -> str:
    """A cell-labels CSV byte for byte as cellxgene 1.3.0 writes it (pandas to_csv after two # lines)."""
    frame = pd.DataFrame(categories, index=pd.Index(cells, name=index_name))
    return LABELS_HEADER + frame.to_csv()


def cell_types(n: int = N_CELLS) -> list[str]:
    """A realistic user category: some cells labelled, the rest `unassigned` as cellxgene writes."""
    return ["T cells" if i % 3 == 0 else "B cells" if i % 3 == 1 else "unassigned" for i in range(n)]


def write_matrix_h5ad(path, X):
    """Write X alone (cells c0.., genes g0..) as an h5ad at `path`; returns the path."""
    n_rows, n_cols = X.shape
    ad.AnnData(
        X,
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n_rows)]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(n_cols)]),
    ).write_h5ad(path)
    return path
