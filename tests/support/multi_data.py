"""Small, viewable h5ad datasets for the several-datasets tests (tests/multi, tests/galaxy)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

# Three datasets, each >= 200 cells (smaller ones break cellxgene's real UI). Their names are
# element identifiers a user could choose: one plain, one with a space and an accent.
DATASETS = {"day0": 220, "day 7 – Müller": 260, "day14": 240}


def make_dataset(path: Path, n_obs: int, seed: int, n_vars: int = 40) -> Path:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.9, size=(n_obs, n_vars)).astype(np.float32)
    obs = pd.DataFrame(
        {"louvain": pd.Categorical([f"c{i % 4}" for i in range(n_obs)])},
        index=[f"s{seed}_cell{i}" for i in range(n_obs)],
    )
    var = pd.DataFrame(index=[f"GENE{i}" for i in range(n_vars)])
    adata = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=var)
    adata.obsm["X_umap"] = rng.normal(size=(n_obs, 2)).astype(np.float32)
    if seed % 2 == 0:
        adata.obsm["X_tsne"] = rng.normal(size=(n_obs, 2)).astype(np.float32)
    adata.write_h5ad(path)
    return path


def make_datasets(folder: Path, sizes: dict[str, int] = DATASETS) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {name: make_dataset(folder / f"ds{i}.h5ad", n, seed=i) for i, (name, n) in enumerate(sizes.items())}
