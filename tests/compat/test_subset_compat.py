"""Every h5ad layout of the corpus (anndata 0.7 to 0.13, scanpy's files) subsets to exactly what
anndata's own `adata[mask].copy()` holds, in blocks far smaller than its matrices."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import pytest
from galaxy_cellxgene.subset import SubsetSource
from support.anndata_compare import assert_same_anndata
from support.compat import corpus

FILES = corpus()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_subset_of_each_layout_equals_anndata_own(path: Path, tmp_path: Path) -> None:
    source = SubsetSource.read(path)
    category, labels = next(iter(source.choices().items()))
    mask = source.mask(category, labels[:1])
    out = tmp_path / "subset.h5ad"
    assert source.write(mask, out, block_bytes=256) == int(mask.sum()) > 0
    assert_same_anndata(ad.read_h5ad(out), ad.read_h5ad(path)[mask].copy())
