"""Issue 25: a gene click answered from the column store (gene_clicks.py) is cellxgene's own answer.

cellxgene's own app (build_session, in process) is asked every request twice: through the app as
served (the gene-click layer first) and through the Flask app behind that layer (cellxgene's own
path: its filter parser, the column store through get_X_array, its FlatBuffers encoder,
Flask-Compress). The two answers must decode, with cellxgene's own decoder, to the same matrix,
byte for byte once decompressed, with the same status; the layer must really have answered the
single-gene clicks (its counter), and nothing else.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from urllib.parse import quote

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from backports import zstd
from galaxy_cellxgene import owner_gate
from galaxy_cellxgene.app import build_session
from galaxy_cellxgene.galaxy_client import GalaxyLink
from galaxy_cellxgene.gene_clicks import GeneClicks
from galaxy_cellxgene.prepare import prepare
from galaxy_cellxgene.session_files import Paths
from galaxy_cellxgene.settings import ViewerOptions
from server.common.fbs.matrix import decode_matrix_fbs
from support.h5ad_builders import build_adata
from werkzeug.test import Client

pytestmark = pytest.mark.slow

N_CELLS = 240
# Names a URL must quote (space, slash, percent, plus, ampersand, equals, hash, non-ASCII), a comma
# (cellxgene reads it as a range), and ordinary ones.
NAMES = ["CD3E", "ZEROS", "a b/c%2Fd", "α+β&γ=δ?#", "x,y", "HLA-DRB1", "MT:CO1", "last"]
BROWSER = {"Accept": "application/octet-stream", "Accept-Encoding": "gzip, deflate, br, zstd"}
ENCODINGS = ["gzip, deflate, br, zstd", "gzip, deflate", "identity", ""]


def matrix(dense: bool, dtype) -> np.ndarray:
    rng = np.random.default_rng(7)
    X = (rng.poisson(0.7, size=(N_CELLS, len(NAMES))) * rng.random((N_CELLS, len(NAMES)))).astype(dtype)
    X[:, NAMES.index("ZEROS")] = 0  # a gene detected in no cell
    X[:, NAMES.index("HLA-DRB1")] = rng.random(N_CELLS).astype(dtype) + 0.5  # detected in every cell
    X[5, :] = 0  # an empty cell
    return X


def write(tmp_path: Path, kind: str, symbols: bool) -> Path:
    adata = build_adata(N_CELLS, len(NAMES))
    dtype = np.float64 if kind == "csr64" else np.float32
    X = matrix(kind == "dense", dtype)
    adata.X = X if kind == "dense" else (sp.csc_matrix(X) if kind == "csc" else sp.csr_matrix(X))
    if symbols:  # Discover-shaped: Ensembl IDs in the index, the names in a column the runtime shows
        adata.var = pd.DataFrame({"gene_symbols": NAMES}, index=[f"ENSG{i:011d}" for i in range(len(NAMES))])
    else:
        adata.var = pd.DataFrame(index=NAMES)
    path = tmp_path / f"{kind}.h5ad"
    ad.AnnData(adata.X, obs=adata.obs, var=adata.var, obsm=dict(adata.obsm)).write_h5ad(path)
    return path


def session_for(tmp_path: Path, kind: str, store: str, symbols: bool = False):
    source = write(tmp_path, kind, symbols)
    # cli.run_view picks the symbol column by default (gene_names.py); here it is named.
    options = ViewerOptions(x_store=store, var_names="gene_symbols" if symbols else None)
    prepared = prepare(source, tmp_path / "work", options)
    paths = Paths(source, prepared.path, tmp_path / "work", tmp_path / "a.csv", tmp_path / "g.csv")
    session = build_session(paths, options)
    if session.columns is not None:
        assert session.columns.ready.wait(60) and session.columns.error is None
    return session


def decoded(response) -> bytes:
    encoding = response.headers.get("Content-Encoding", "identity")
    body = response.get_data()
    if encoding == "zstd":
        return zstd.decompress(body)
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "br":
        import brotli

        return brotli.decompress(body)
    assert encoding == "identity"
    return body


def var_column(client: Client) -> str:
    return client.get("/api/v0.2/schema").get_json()["schema"]["annotations"]["var"]["index"]


def click(column: str, gene: str, twice: bool = False) -> str:
    value = quote(quote(gene, safe="") if twice else gene, safe="")
    return f"/api/v0.2/data/var?{quote('var:' + column, safe=':')}={value}"


def same_answer(served: Client, own: Client, path: str, headers: dict[str, str], decode: bool = True) -> bytes:
    fast, slow = served.get(path, headers=headers), own.get(path, headers=headers)
    assert fast.status_code == slow.status_code, path
    if slow.status_code != 200:
        return b""
    for header in ("Content-Type", "Cache-Control"):
        assert fast.headers.get(header) == slow.headers.get(header), (path, header)
    got, want = decoded(fast), decoded(slow)
    assert got == want, path  # the same bytes, so cellxgene's decoder reads the same matrix
    if decode:  # (cellxgene's decoder cannot read its own every-gene answer: an empty colIndex)
        pd.testing.assert_frame_equal(decode_matrix_fbs(got), decode_matrix_fbs(want))
    return got


CASES = [
    ("csr32", "memory", False),
    ("csr32", "disk", False),
    ("csr64", "memory", False),
    ("csc", "disk", False),  # a column-major X, read in place
    ("csr32", "disk", True),  # genes named by a symbol column, not the index
]


@pytest.mark.parametrize(("kind", "store", "symbols"), CASES)
def test_every_click_is_cellxgenes_own_answer(tmp_path: Path, kind: str, store: str, symbols: bool) -> None:
    session = session_for(tmp_path, kind, store, symbols)
    layer = session.app.wsgi_app
    assert isinstance(layer, GeneClicks)
    served, own = Client(session.app), Client(layer.app)
    column = var_column(served)
    clicks = 0
    for gene in NAMES:
        for encoding in ENCODINGS:
            for twice in (False, True):  # the UI quotes twice; cellxgene unquotes twice
                got = same_answer(served, own, click(column, gene, twice), {**BROWSER, "Accept-Encoding": encoding})
                # Found by cellxgene (single-quoted "a b/c%2Fd" is not: it unquotes once more; a
                # bare comma is its range syntax, a 400): then the layer answered it.
                clicks += bool(got) and decode_matrix_fbs(got).shape[1] == 1
    values = decode_matrix_fbs(same_answer(served, own, click(column, "ZEROS"), BROWSER))
    assert values.shape == (N_CELLS, 1) and not values.to_numpy().any()
    assert layer.answered == clicks + 1 > 1  # the fast path answered every single-gene click it could
    assert session.in_flight == 0  # and counted each as activity, then as ended


@pytest.mark.parametrize(("kind", "store"), [("csr32", "memory"), ("dense", "auto")])
def test_anything_else_is_cellxgenes_to_answer(tmp_path: Path, kind: str, store: str) -> None:
    session = session_for(tmp_path, kind, store)
    layer = session.app.wsgi_app
    served = Client(session.app)
    own = Client(layer.app) if isinstance(layer, GeneClicks) else served
    column = var_column(served)
    col = quote("var:" + column, safe=":")
    for path, headers in [
        (click(column, "NO-SUCH-GENE"), BROWSER),  # unknown: cellxgene's empty matrix, its status
        (f"/api/v0.2/data/var?{col}=CD3E&{col}=last", BROWSER),  # two genes
        (f"/api/v0.2/data/var?{col}=1,2", BROWSER),  # a range
        (f"/api/v0.2/data/var?obs:louvain=NK&{col}=CD3E", BROWSER),  # an obs filter: cellxgene's 400
        ("/api/v0.2/data/var?var:gene_symbols=SYM1", BROWSER),  # another var column
        (click(column, "CD3E"), {"Accept": "application/json"}),  # cellxgene's 406
        ("/api/v0.2/data/var", BROWSER),  # every gene
        (f"/api/v0.2/data/var?{col}=%FF", BROWSER),  # not UTF-8 once unquoted
        (f"/api/v0.2/data/var?{col}=", BROWSER),  # no name
        (f"/api/v0.2/data/var?{col}", BROWSER),  # no value at all
        (f"/api/v0.2/data/var?var:{col}=CD3E", BROWSER),  # two colons: cellxgene's 400
    ]:
        same_answer(served, own, path, headers, decode="=" in path)
    if kind == "dense":  # no column store: cellxgene reads X itself, nothing to answer beside it
        assert not isinstance(layer, GeneClicks)
        same_answer(served, own, click(column, "CD3E"), BROWSER)
    else:
        assert layer.answered == 0


def test_a_click_from_anyone_but_the_owner_is_refused(tmp_path: Path) -> None:
    session = session_for(tmp_path, "csr32", "disk")
    emails = {"owner-session": "owner@example.org", "other-session": "other@example.org"}
    link = GalaxyLink(None, None)
    # As serve.py composes it: the owner gate outside the app, so outside the gene-click layer.
    gate = owner_gate.OwnerGate(session.app, "owner@example.org", link, resolve=emails.get)
    client = Client(gate)
    column = var_column(Client(session.app))
    for cookie in ("other-session", None):
        if cookie:
            client.set_cookie(link.cookie_name, cookie)
        else:
            client.delete_cookie(link.cookie_name)
        assert client.get(click(column, "CD3E"), headers=BROWSER).status_code == 403
    assert session.app.wsgi_app.answered == 0
    client.set_cookie(link.cookie_name, "owner-session")
    answer = client.get(click(column, "CD3E"), headers=BROWSER)
    assert answer.status_code == 200 and decode_matrix_fbs(decoded(answer)).shape == (N_CELLS, 1)
    assert session.app.wsgi_app.answered == 1
