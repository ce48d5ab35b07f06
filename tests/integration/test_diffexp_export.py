"""Differential expression results captured on the server, as the tables Export sends to Galaxy.

cellxgene's own app (build_session, in process) answers the UI's diffexp request; the runtime
records the request's two cell sets and the answer's genes (diffexp_export.py). The upload into
a real history is proved by tests/browser/test_diffexp_roundtrip.py.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from galaxy_cellxgene.app import build_session
from galaxy_cellxgene.diffexp_export import COLUMNS
from galaxy_cellxgene.prepare import prepare
from galaxy_cellxgene.session_files import Paths
from galaxy_cellxgene.settings import ViewerOptions
from support.fixtures import DEMO

pytestmark = pytest.mark.slow


def selection(cells: np.ndarray) -> dict:
    return {"filter": {"obs": {"index": [int(c) for c in cells]}}}


def test_each_comparison_is_recorded_with_gene_names_and_set_names(tmp_path: Path) -> None:
    options = ViewerOptions()
    prepared = prepare(DEMO, tmp_path / "work", options)
    paths = Paths(DEMO, prepared.path, tmp_path / "work", tmp_path / "a.csv", tmp_path / "g.csv")
    session = build_session(paths, options)
    client = session.app.test_client()
    obs = ad.read_h5ad(DEMO, backed="r").obs
    genes = list(ad.read_h5ad(DEMO, backed="r").var_names)
    cluster = np.nonzero((obs["louvain"].astype(str) == "1").to_numpy())[0]
    others = np.nonzero((obs["louvain"].astype(str) != "1").to_numpy())[0][:60]

    body = {"mode": "topN", "count": 7, "set1": selection(cluster), "set2": selection(others)}
    answer = client.post("/api/v0.2/diffexp/obs", json=body)
    assert answer.status_code == 200
    result = answer.get_json()
    # The same request again (a second click) is still one comparison.
    assert client.post("/api/v0.2/diffexp/obs", json=body).status_code == 200
    # A failed request (no sets) records nothing.
    assert client.post("/api/v0.2/diffexp/obs", json={"mode": "topN"}).status_code >= 400

    [comparison] = session.diffexp.comparisons
    assert comparison.set_1 == f"louvain: 1 ({len(cluster)} cells)"  # exactly the cells of one value
    assert comparison.set_2 == "set 2 (60 cells)"  # a mixture: no name the UI knows
    assert session.status()["diffexp_results"] == [comparison.title()]

    table = comparison.table().splitlines()
    assert table[0] == "#" + "\t".join(COLUMNS)
    rows = [line.split("\t") for line in table[1:]]
    expected = result["positive"] + result["negative"]
    assert len(rows) == len(expected) == 14
    for row, (var_index, lfc, pval, padj) in zip(rows, expected, strict=True):
        assert row[0] == genes[var_index]
        assert [float(x) for x in row[1:4]] == pytest.approx([lfc, pval, padj])
        assert row[5:] == [comparison.set_1, comparison.set_2]
    assert {row[4] for row in rows[:7]} == {comparison.set_1} and {row[4] for row in rows[7:]} == {comparison.set_2}
    # Galaxy's tabular reader takes the # line as the column names.
    frame = pd.read_csv(session.diffexp.write(comparison), sep="\t")
    assert list(frame.columns) == ["#gene", *COLUMNS[1:]] and len(frame) == 14
