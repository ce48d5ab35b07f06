"""Every part of two AnnData objects compared, the way a user reading both back would check them.

(anndata.tests.helpers.assert_equal would do, but importing it registers pytest marks this
project's strict-markers configuration refuses.)
"""

from __future__ import annotations

from collections.abc import Mapping

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

PARTS = ("obsm", "obsp", "varm", "varp", "layers")


def _matrix(got, want, where: str) -> None:
    assert sp.issparse(got) == sp.issparse(want), f"{where}: sparse {sp.issparse(got)} != {sp.issparse(want)}"
    if sp.issparse(want):
        assert got.format == want.format, f"{where}: {got.format} != {want.format}"
        got, want = got.toarray(), want.toarray()
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{where}: dtype {got.dtype} != {want.dtype}"
    np.testing.assert_array_equal(got, want, err_msg=where)


def _value(got, want, where: str) -> None:
    if isinstance(want, Mapping):
        assert set(got) == set(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            _value(got[key], want[key], f"{where}/{key}")
    elif isinstance(want, pd.DataFrame):
        pd.testing.assert_frame_equal(got, want, obj=where)
    elif sp.issparse(want) or isinstance(want, np.ndarray):
        _matrix(got, want, where)
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def assert_same_anndata(got: ad.AnnData, want: ad.AnnData) -> None:
    assert got.shape == want.shape
    pd.testing.assert_frame_equal(got.obs, want.obs, obj="obs")
    pd.testing.assert_frame_equal(got.var, want.var, obj="var")
    if want.X is None:
        assert got.X is None
    else:
        _matrix(got.X, want.X, "X")
    for part in PARTS:
        _value(dict(getattr(got, part)), dict(getattr(want, part)), part)
    _value(dict(got.uns), dict(want.uns), "uns")
    assert (got.raw is None) == (want.raw is None), "raw"
    if want.raw is not None:
        _matrix(got.raw.X, want.raw.X, "raw/X")
        pd.testing.assert_frame_equal(got.raw.var, want.raw.var, obj="raw/var")
        _value(dict(got.raw.varm), dict(want.raw.varm), "raw/varm")
