"""The one metadata reader (frames.py) against anndata, and the prepared file cellxgene is handed.

For every corpus file the reader must see what anndata 0.12.19 (the runtime's) sees: the same
columns, index and values. The prepared file shows pandas' nullable columns in types cellxgene
1.3.0's own type rules accept, links X instead of copying it, and leaves the input untouched.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import anndata as ad
import h5py
import pandas as pd
import pytest
from galaxy_cellxgene.frames import LazyFrame
from galaxy_cellxgene.prepare import prepare
from galaxy_cellxgene.settings import ViewerOptions
from server.common.utils.type_conversion_utils import get_schema_type_hint_of_array
from support.compat import CORPUS, corpus, storage_of, writer_of

FILES = corpus()


def _values(series) -> list:
    return [None if pd.isna(v) else str(v) for v in pd.Series(series).astype(object)]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_the_reader_sees_what_anndata_sees(path: Path) -> None:
    from anndata.io import read_elem

    with h5py.File(path) as f:
        for axis in ("obs", "var"):
            lazy, frame = LazyFrame(f[axis]), read_elem(f[axis])
            assert list(lazy.columns) == list(frame.columns), axis
            assert len(lazy) == len(frame)
            assert list(map(str, lazy.index)) == list(map(str, frame.index)), axis
            for column in frame.columns:
                assert _values(lazy[column]) == _values(frame[column]), (axis, column)
        assert LazyFrame(f["obs"]).legacy == (writer_of(path) == "anndata-0.7")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "name", ["anndata-0.13_nullable_string.h5ad", "anndata-0.12_nullable.h5ad", "scanpy-1.12_pbmc.h5ad"]
)
def test_prepared_file_shows_nullable_columns_as_cellxgene_loads_them(name: str, tmp_path: Path) -> None:
    source = CORPUS / name
    before = _digest(source)
    prepared = prepare(source, tmp_path, ViewerOptions())
    assert prepared.linked and "columns in a form cellxgene loads" in prepared.reason
    assert _digest(source) == before  # the input is never rewritten
    with h5py.File(prepared.path) as f:
        link = f.get("X", getlink=True)
        assert isinstance(link, h5py.ExternalLink) and link.path == "/X"  # X is linked, never copied
    assert prepared.path.stat().st_size < source.stat().st_size / 2
    adata = ad.read_h5ad(prepared.path)
    original = ad.read_h5ad(source)
    for axis in ("obs", "var"):
        shown, written = getattr(adata, axis), getattr(original, axis)
        assert list(shown.columns) == list(written.columns)
        assert list(shown.index) == list(map(str, written.index))
        for column in shown.columns:
            get_schema_type_hint_of_array(shown[column])  # raises on a type cellxgene 1.3.0 cannot load
            assert not isinstance(shown[column].dtype, pd.api.extensions.ExtensionDtype) or isinstance(
                shown[column].dtype, pd.CategoricalDtype
            ), (axis, column, shown[column].dtype)
            assert _values(shown[column]) == _values(written[column]) or pd.api.types.is_float_dtype(shown[column]), (
                axis,
                column,
            )


def test_nullable_integers_with_missing_values_become_decimals_with_nan(tmp_path: Path) -> None:
    source = CORPUS / "anndata-0.12_nullable.h5ad"
    shown = ad.read_h5ad(prepare(source, tmp_path, ViewerOptions()).path).obs
    written = ad.read_h5ad(source).obs
    assert shown["n_genes"].dtype == "float64"
    assert shown["n_genes"].isna().sum() == written["n_genes"].isna().sum() > 0
    assert (shown["n_genes"].dropna() == written["n_genes"].dropna().astype(float)).all()
    assert shown["n_cells_total"].dtype == "int64"  # no missing values: integers stay integers
    assert isinstance(shown["qc_pass"].dtype, pd.CategoricalDtype)
    assert list(shown["qc_pass"].cat.categories) == ["False", "True"]


def test_corpus_files_with_nothing_to_convert_keep_their_obs_and_var(tmp_path: Path) -> None:
    plain = [f for f in FILES if storage_of(f) == "dense" and writer_of(f) in ("anndata-0.8", "anndata-0.10")]
    assert plain
    for path in plain:
        prepared = prepare(path, tmp_path / path.stem, ViewerOptions())
        assert "columns in a form cellxgene loads" not in prepared.reason
        if prepared.linked:  # linked for the 10-column X_pca: obs and var stay links to the input
            with h5py.File(prepared.path) as f:
                assert isinstance(f.get("obs", getlink=True), h5py.ExternalLink)
                assert isinstance(f.get("var", getlink=True), h5py.ExternalLink)


def test_an_awkward_array_in_obsm_is_left_out_with_a_note(tmp_path: Path) -> None:
    """anndata writes awkward arrays as `awkward-array` groups; reading one needs the awkward
    package, which the runtime does not have: check names it, the viewer's file leaves it out."""
    import shutil

    from galaxy_cellxgene.validate import inspect

    source = tmp_path / "with_awkward.h5ad"
    shutil.copy(CORPUS / "anndata-0.13_dense.h5ad", source)
    with h5py.File(source, "r+") as f:
        node = f["obsm"].create_group("ragged")
        node.attrs.update({"encoding-type": "awkward-array", "encoding-version": "0.1.0", "length": 240})
        node.create_dataset("node0-offsets", data=list(range(241)))
    with pytest.raises(Exception, match=r"(?i)awkward"):
        ad.read_h5ad(source)  # what cellxgene would hit, handed the file as it is
    inspection = inspect(source, ViewerOptions())
    assert inspection.errors == []
    ragged = next(e for e in inspection.summary.embeddings if e.name == "ragged")
    assert not ragged.shown and ragged.reason == "an awkward-array, not a 2-D array of coordinates"
    prepared = prepare(source, tmp_path / "work", ViewerOptions())
    adata = ad.read_h5ad(prepared.path)  # loads: the entry is not in the viewer's file
    assert "ragged" not in adata.obsm and {"X_umap", "X_pca"} <= set(adata.obsm)
