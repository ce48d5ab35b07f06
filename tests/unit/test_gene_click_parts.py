"""gene_clicks.py's parts: cellxgene's FlatBuffers bytes from the template, the encoding a browser gets,
each store's read of one gene, and cellxgene answering whatever the layer cannot (a store still being
built, rows a malformed store gives)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from galaxy_cellxgene.column_file import ColumnFile, build_column_file
from galaxy_cellxgene.columns import read_row_blocks
from galaxy_cellxgene.gene_clicks import GeneClicks, choose_encoding, matrix_template
from server.common.fbs.matrix import decode_matrix_fbs, encode_matrix_fbs
from support.h5ad_builders import write_matrix_h5ad as write_h5ad

# One gene clicked, as cellxgene's page asks for it.
ONE_GENE = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/api/v0.2/data/var",
    "QUERY_STRING": "var:name_0=g1",
    "HTTP_ACCEPT": "application/octet-stream",
}


@pytest.mark.parametrize("n_rows", [4, 5, 200, 4097, 100_001])
@pytest.mark.parametrize("col", [0, 1, 19_999, 2**31 - 1])
def test_the_template_gives_cellxgenes_bytes(n_rows: int, col: int) -> None:
    rng = np.random.default_rng(n_rows)
    column = np.where(rng.random(n_rows) < 0.3, rng.random(n_rows), 0).astype(np.float32)
    template = matrix_template(n_rows)
    assert template is not None
    rows = np.flatnonzero(column)
    got = bytes(template.encode(rows, column[rows], col))
    want = bytes(encode_matrix_fbs(column.reshape(-1, 1), col_idx=np.array([col])))
    assert got == want
    frame = decode_matrix_fbs(got)
    assert list(frame.columns) == [col]
    np.testing.assert_array_equal(frame[col].to_numpy(), column)


def test_float64_values_round_as_cellxgene_rounds_them() -> None:
    values = np.array([0.1, 1e-40, 3.4e38, np.nan, -2.5, 1 / 3])
    rows = np.array([0, 2, 3, 5, 7, 9])
    column = np.zeros(10)
    column[rows] = values
    got = bytes(matrix_template(10).encode(rows, values, 3))
    assert got == bytes(encode_matrix_fbs(column.reshape(-1, 1), col_idx=np.array([3])))


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("gzip, deflate, br, zstd", "zstd"),  # Chromium
        ("gzip, deflate, br", "br"),  # Safari, older Firefox
        ("gzip, deflate", "gzip"),
        ("zstd;q=0, br;q=0, gzip", "gzip"),
        ("*", "zstd"),
        ("*;q=0", "identity"),
        ("identity", "identity"),
        ("", "identity"),
        ("GZIP;q=0.5", "gzip"),
        ("zstd;q=bogus, deflate", "identity"),
    ],
)
def test_the_encoding_is_one_the_browser_accepts(accept: str, chosen: str) -> None:
    assert choose_encoding(accept) == chosen


class Adaptor:
    def __init__(self) -> None:
        self.parameters = {"var_names": "name_0"}

    server_config = SimpleNamespace(exceeds_limit=lambda name, value: False)

    def get_shape(self):
        return 200, 3


def test_a_store_still_being_built_leaves_the_click_to_cellxgene() -> None:
    seen = []

    def cellxgene(environ, start_response):
        seen.append(environ["QUERY_STRING"])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"cellxgene"]

    store = SimpleNamespace(ready=threading.Event(), matrix=None)
    counted = []
    layer = GeneClicks(cellxgene, Adaptor(), store, (lambda: counted.append(1), lambda: None), True)
    environ = dict(ONE_GENE)
    assert layer(environ, lambda status, headers: None) == [b"cellxgene"]
    assert seen == ["var:name_0=g1"] and layer.answered == 0 and not counted


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> tuple[sp.csr_matrix, Path]:
    rng = np.random.default_rng(11)
    X = sp.random(300, 17, density=0.2, format="lil", dtype=np.float32, random_state=rng)
    X[:, 4] = 0  # a gene in no cell
    X[:, 9] = 1.5  # a gene in every cell
    X = X.tocsr()
    return X, write_h5ad(tmp_path_factory.mktemp("genes") / "x.h5ad", X)


@pytest.mark.parametrize("nnz_per_block", [1, 13, 10**9])
def test_a_gene_read_is_its_column(stored, tmp_path: Path, nnz_per_block: int) -> None:
    X, path = stored
    build_column_file(path, tmp_path / "x.columns.h5")
    for store in (read_row_blocks(str(path), nnz_per_block=nnz_per_block), ColumnFile(tmp_path / "x.columns.h5")):
        for col in range(X.shape[1]):
            rows, values = store.gene(col)
            want = X[:, col].tocoo()
            np.testing.assert_array_equal(rows, np.sort(want.row))
            np.testing.assert_array_equal(values, X[:, col].toarray().ravel()[rows])
            assert values.dtype == np.float32


def test_rows_a_malformed_store_gives_are_left_to_cellxgene() -> None:
    seen = []

    def cellxgene(environ, start_response):
        seen.append(environ["QUERY_STRING"])
        return [b"cellxgene"]

    ready = threading.Event()
    ready.set()
    for rows in ([3, 1], [2, 2], [-1, 5], [5, 200]):  # unsorted, repeated, negative, past the last cell
        matrix = SimpleNamespace(dtype=np.dtype(np.float32), gene=lambda col, r=rows: (np.array(r), np.ones(2)))
        layer = GeneClicks(cellxgene, Adaptor(), SimpleNamespace(ready=ready, matrix=matrix), (int, int), True)
        layer.genes._map = {"g1": 1}
        environ = dict(ONE_GENE)
        assert layer(environ, lambda status, headers: None) == [b"cellxgene"]
        assert layer.answered == 0 and not layer.failed
    assert len(seen) == 4
