"""A view whose column store is held back deterministically: another job "is building" the same
dataset's shared store (store_cache.py's lock), as happens when a dataset is opened twice. The
cells are served meanwhile; gene requests wait (tests/integration/test_gene_notice*.py)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from galaxy_cellxgene.store_cache import CACHE_ENV, cache_key

UUID = "5d1e0c2a-7b3f-4e9d-a6c8-2f0b9e1d7a34"


@contextlib.contextmanager
def another_job_building(cache: Path, uuid: str = UUID) -> Iterator[None]:
    """Hold the store cache's lock for the dataset, as a job building its store does."""
    cache.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache / f".{cache_key(uuid)}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_dataset(path: Path, X: sp.csr_matrix) -> Path:
    """X (cells c0.., genes g0..) with a cell type per cell and a UMAP: what the page draws."""
    n_cells, n_genes = X.shape
    rng = np.random.default_rng(0)
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical([("T", "B", "NK")[i % 3] for i in range(n_cells)])},
        index=[f"c{i}" for i in range(n_cells)],
    )
    adata = ad.AnnData(X, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))
    adata.obsm["X_umap"] = rng.normal(size=(n_cells, 2)).astype(np.float32)
    adata.write_h5ad(path)
    return path


def held_back_view(runtime, tmp_path: Path, X: sp.csr_matrix):
    """A view of X whose column store waits for another job's build (started with the lock held)."""
    path = write_dataset(tmp_path / "csr.h5ad", X)
    env = {CACHE_ENV: str(tmp_path / "cache")}
    return runtime(path, "--x-store", "disk", "--dataset-uuid", UUID, env=env)
