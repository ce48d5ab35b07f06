"""A refusal names every blocker at once: no check returns at the first problem."""

from __future__ import annotations

from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
from galaxy_cellxgene.settings import ViewerOptions
from galaxy_cellxgene.validate import inspect


def _whats(path: Path) -> list[str]:
    return [p.what for p in inspect(path, ViewerOptions()).errors]


def test_no_x_and_no_embedding_are_both_named(tmp_path: Path) -> None:
    path = tmp_path / "no_x.h5ad"
    anndata.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(5)]), var=pd.DataFrame(index=["g"])).write_h5ad(path)
    whats = _whats(path)
    assert len(whats) == 2, whats
    assert whats[0].startswith("The dataset has no expression values: it is an AnnData file written with X=None")
    assert whats[1].startswith("No embedding cellxgene can draw (obsm is empty)")
    assert not any("not an AnnData" in w for w in whats)


def test_an_unreadable_obs_does_not_hide_the_other_blockers(tmp_path: Path) -> None:
    path = tmp_path / "odd.h5ad"
    anndata.AnnData(X=np.ones((5, 2), dtype=np.float32)).write_h5ad(path)
    with h5py.File(path, "r+") as f:
        f["obs"].attrs["encoding-type"] = "something-else"
        del f["X"]
    whats = _whats(path)
    assert whats[0].startswith("obs cannot be read as an AnnData dataframe")
    assert any(w.startswith("The dataset has no expression values") for w in whats)
    assert any(w.startswith("No embedding cellxgene can draw") for w in whats)
    assert len(whats) == 3, whats
