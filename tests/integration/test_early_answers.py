"""Issue 25, "cells first": every early answer (early_answers.py) is cellxgene's own, or None.

For each file of a varied corpus the real session is built (build_session, in process) and each
route the page asks first is put to both: cellxgene's app through Flask's test client, and
EarlyAnswers from h5py. An early answer that is not None must decode to cellxgene's: equal JSON,
or FlatBuffers matrices equal once decoded by cellxgene's own decoder (names, values, NaN where
cellxgene has NaN); `config` equal but for the hash of the user id cellxgene draws per browser
(early_config.py). The ordinary files must be answered early on every route, or the speed-up
never happens.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote

import numpy as np
import pandas as pd
import pytest
from galaxy_cellxgene.app import build_session
from galaxy_cellxgene.cellxgene_internals import StartupError
from galaxy_cellxgene.early_answers import EarlyAnswers
from galaxy_cellxgene.galaxy_client import GalaxyLink
from galaxy_cellxgene.prepare import prepare
from galaxy_cellxgene.session_files import Paths
from galaxy_cellxgene.settings import ViewerOptions, page_scripts, with_dataset_defaults
from galaxy_cellxgene.validate import inspect
from server.common.fbs.matrix import decode_matrix_fbs
from support.fixtures import DEMO, ROOT, TEST_DATA
from support.h5ad_builders import build_adata
from werkzeug.test import Client

pytestmark = pytest.mark.slow

API = "/api/v0.2/"
FBS = {"Accept": "application/octet-stream"}
JSON = {"Accept": "application/json"}
COMPAT = sorted((TEST_DATA / "compat").glob("*.h5ad"))


@dataclass
class Tally:
    """How many routes each file asked, and which were left to cellxgene."""

    asked: int = 0
    none: list[str] = field(default_factory=list)


TALLY: dict[str, Tally] = {}


def write_varied(path: Path) -> Path:
    """Every column kind cellxgene types differently: the early reader's rules, one by one."""
    adata = build_adata(240, 30, seed=3)
    n = adata.n_obs
    rng = np.random.default_rng(5)
    codes = rng.integers(-1, 3, n)
    adata.obs = adata.obs.assign(
        int64=np.arange(n, dtype=np.int64) * 1000,
        uint8=(np.arange(n) % 200).astype(np.uint8),
        uint32=np.arange(n, dtype=np.uint32),
        int16=(np.arange(n) - 100).astype(np.int16),
        boolean=np.arange(n) % 3 == 0,
        float64_nan=np.where(np.arange(n) % 7 == 0, np.nan, rng.normal(size=n)),
        float16=rng.normal(size=n).astype(np.float16),
        cat_missing=pd.Categorical.from_codes(codes, ["a", "b/c", 'd "quoted"']),
        cat_unicode=pd.Categorical([["α", "β γ", "日本"][i % 3] for i in range(n)]),
        cat_int=pd.Categorical((np.arange(n) % 4) * 10),
        cat_int_missing=pd.Categorical.from_codes(codes, [5, 7, 9]),
        cat_float=pd.Categorical((np.arange(n) % 3) / 2),
        text=[f"cell \\ {i} ✓" for i in range(n)],
    )
    adata.obsm["X_tsne"] = np.where(np.arange(n)[:, None] % 11 == 0, np.nan, rng.normal(size=(n, 2)))
    adata.obsm["X_int"] = rng.integers(-50, 50, size=(n, 3))
    adata.uns["louvain_colors"] = np.array(["#1F77B4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"])
    adata.write_h5ad(path)
    return path


def write_gene_ids(path: Path) -> Path:
    """Indexed by gene IDs with a symbol column: the runtime shows the symbols (gene_names.py)."""
    build_adata(240, 40).write_h5ad(path)
    return path


def write_spatial(path: Path) -> Path:
    adata = build_adata(240, 20)
    adata.obsm["spatial"] = np.random.default_rng(2).uniform(0, 5000, size=(240, 2))
    adata.write_h5ad(path)
    return path


def write_atlas(folder: Path) -> Path:
    """scripts/data/make_bench_data.py's atlas shape (the benchmark's 100k file), small."""
    spec = importlib.util.spec_from_file_location("make_bench_data", ROOT / "scripts" / "data" / "make_bench_data.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.make_atlas(1500, folder, seed=11, force=True, n_genes=400)


def session_and_early(tmp_path: Path, source: Path, options: ViewerOptions, **previous: Path):
    """The runtime's session for `source` (as cli.run_view builds it) and the early answers beside it."""
    inspection = inspect(source, options, thorough=False)
    if inspection.errors:
        pytest.skip(f"{source.name} is refused by the checks")
    options = with_dataset_defaults(options, inspection.summary.default_var_names, inspection.summary.default_embedding)
    work = tmp_path / "work"
    prepared = prepare(source, work, options)
    paths = Paths(source, prepared.path, work, tmp_path / "a.csv", tmp_path / "g.csv", **previous)
    try:
        session = build_session(paths, options, galaxy=GalaxyLink(None, None))
    except StartupError:
        pytest.skip(f"cellxgene refuses {source.name}")
    early = EarlyAnswers(prepared.path, options, paths, page_scripts(False), session.columns is not None)
    if session.columns is not None:
        assert session.columns.ready.wait(120)
    return session, early


def routes(client: Client) -> list[tuple[str, dict[str, str]]]:
    """Every request of the page's start: the JSON routes, each obs column, the gene names, each layout."""
    schema = client.get(API + "schema").get_json()["schema"]
    asked = [("config", JSON), ("schema", JSON), ("colors", JSON), ("genesets", JSON)]
    for column in schema["annotations"]["obs"]["columns"]:
        asked.append((f"annotations/obs?annotation-name={quote(column['name'], safe='')}", FBS))
    asked.append((f"annotations/var?annotation-name={quote(schema['annotations']['var']['index'], safe='')}", FBS))
    for layout in schema["layout"]["obs"]:
        asked.append((f"layout/obs?layout-name={quote(layout['name'], safe='')}", FBS))
    return asked


def assert_same_matrix(early: bytes, own: bytes, path: str) -> None:
    got, want = decode_matrix_fbs(early), decode_matrix_fbs(own)
    assert list(got.columns) == list(want.columns), path
    assert got.shape == want.shape, path
    for name in want.columns:
        mine, theirs = got[name].to_numpy(), want[name].to_numpy()
        assert mine.dtype == theirs.dtype, (path, name)
        if theirs.dtype.kind == "f":
            np.testing.assert_array_equal(mine, theirs, err_msg=f"{path} {name}")  # NaN equals NaN here
        else:
            assert mine.tolist() == theirs.tolist(), (path, name)
    assert early == own, f"{path}: the same matrix in other bytes"


def compare(name: str, session, early: EarlyAnswers) -> Tally:
    client = Client(session.app)
    tally = TALLY.setdefault(name, Tally())
    for path, headers in routes(client):
        route, _, query = path.partition("?")
        got = early.answer(route, parse_qs(query))
        tally.asked += 1
        if got is None:
            tally.none.append(path)
            continue
        response = client.get(API + path, headers=headers)
        assert response.status_code == 200, path
        content_type, body = got
        assert response.headers["Content-Type"] == content_type, path
        if route == "config":
            # cellxgene hashes a user id it draws for each browser (early_config.py): all else equal.
            mine, theirs = json.loads(body), response.get_json()
            for config in (mine, theirs):
                assert len(config["config"]["parameters"].pop("annotations-user-data-idhash")) == 8
            assert mine == theirs
        elif content_type == "application/json":
            assert json.loads(body) == response.get_json(), path
            assert body == response.get_data(), f"{path}: the same JSON in other bytes"
        else:
            assert_same_matrix(body, response.get_data(), path)
    early.close()
    return tally


def early_genesets(paths: Paths, options: ViewerOptions) -> tuple[str, bytes] | None:
    early = EarlyAnswers(paths.prepared, options, paths, page_scripts(False))
    try:
        return early.answer("genesets", {})
    finally:
        early.close()


def answered_everywhere(tally: Tally) -> None:
    assert tally.none == [], f"left to cellxgene: {tally.none}"


def test_demo(tmp_path: Path) -> None:
    session, early = session_and_early(tmp_path, DEMO, ViewerOptions())
    answered_everywhere(compare("demo", session, early))


def test_atlas_shaped(tmp_path: Path) -> None:
    session, early = session_and_early(tmp_path, write_atlas(tmp_path), ViewerOptions())
    answered_everywhere(compare("atlas", session, early))


def test_varied_columns(tmp_path: Path) -> None:
    session, early = session_and_early(tmp_path, write_varied(tmp_path / "varied.h5ad"), ViewerOptions())
    answered_everywhere(compare("varied", session, early))


def test_gene_ids_with_symbols(tmp_path: Path) -> None:
    session, early = session_and_early(tmp_path, write_gene_ids(tmp_path / "ids.h5ad"), ViewerOptions())
    assert early.answer("schema", {}) is not None
    tally = compare("gene ids", session, early)
    answered_everywhere(tally)


def test_chosen_embeddings_and_index(tmp_path: Path) -> None:
    options = ViewerOptions(embeddings=("X_pca", "umap"), var_names="__index__", obs_names="barcode")
    session, early = session_and_early(tmp_path, write_gene_ids(tmp_path / "ids.h5ad"), options)
    answered_everywhere(compare("chosen", session, early))


@pytest.mark.parametrize(
    "options",
    [ViewerOptions(layer="lognorm"), ViewerOptions(make_var_names_unique=True), ViewerOptions(title="Τίτλος")],
    ids=["layer", "unique var names", "title"],
)
def test_demo_options(tmp_path: Path, options: ViewerOptions, request: pytest.FixtureRequest) -> None:
    session, early = session_and_early(tmp_path, DEMO, options)
    answered_everywhere(compare(f"demo, {request.node.callspec.id}", session, early))


def test_spatial(tmp_path: Path) -> None:
    options = ViewerOptions(embeddings=("spatial", "X_umap"))
    session, early = session_and_early(tmp_path, write_spatial(tmp_path / "spatial.h5ad"), options)
    answered_everywhere(compare("spatial", session, early))


def test_resumed_labels_and_gene_sets(tmp_path: Path) -> None:
    previous = {
        "previous_annotations": TEST_DATA / "pbmc_demo_annotations.csv",
        "previous_gene_sets": TEST_DATA / "pbmc_demo_gene_sets.csv",
    }
    session, early = session_and_early(tmp_path, DEMO, ViewerOptions(), **previous)
    tally = compare("resumed", session, early)
    assert tally.none == []
    genesets = json.loads(early_genesets(session.paths, session.options)[1])["genesets"]
    assert genesets and all(gene_set["genes"] for gene_set in genesets)


@pytest.mark.parametrize("hashed", [False, True], ids=["quoted", "hash"])
def test_resumed_labels_with_awkward_values(tmp_path: Path, hashed: bool) -> None:
    """Quotes, commas, non-ASCII and empty labels are read as cellxgene reads them; a `#` inside a
    line (where pandas cuts the line) leaves the obs columns to cellxgene."""
    import anndata as ad
    from galaxy_cellxgene.labels import labels_csv

    cells = ad.read_h5ad(DEMO, backed="r").obs_names
    names = ['mono "classical"', "NK, cytotoxic", "T/β", "", "cluster #3" if hashed else "B"]
    labels = pd.DataFrame({"kind": [names[i % len(names)] for i in range(len(cells))]}, index=cells)
    previous = tmp_path / "previous.csv"
    previous.write_text(labels_csv(labels, "# resumed\n"))
    # Gene sets with a repeated gene, an unknown one, a set without genes, a quoted '#' name.
    genes = ad.read_h5ad(DEMO, backed="r").var_names[:3].tolist()
    sets = tmp_path / "sets.csv"
    sets.write_text(
        "# resumed\ngene_set_name,gene_set_description,gene_symbol,gene_description\n"
        f'repeats,"α, β",{genes[0]},first\nrepeats,,{genes[0]},again\nrepeats,,NOT_A_GENE,\n'
        f'empty,only a name,,\n"#1 markers",,{genes[1]},\n"#1 markers",,{genes[2]},"said ""this"""\n'
    )
    session, early = session_and_early(
        tmp_path, DEMO, ViewerOptions(), previous_annotations=previous, previous_gene_sets=sets
    )
    tally = compare(f"awkward labels{' #' if hashed else ''}", session, early)
    assert ("schema" in tally.none) == hashed
    assert len(tally.none) == (12 if hashed else 0), tally.none


def test_without_custom_colors(tmp_path: Path) -> None:
    options = ViewerOptions(custom_colors=False)  # (annotations=False: cellxgene 1.3.0 itself fails to start)
    session, early = session_and_early(tmp_path, DEMO, options)
    answered_everywhere(compare("options off", session, early))


@pytest.mark.parametrize("source", COMPAT, ids=[p.name for p in COMPAT])
def test_compat_corpus(tmp_path: Path, source: Path) -> None:
    session, early = session_and_early(tmp_path, source, ViewerOptions())
    compare(source.name, session, early)


@pytest.mark.parametrize("source", sorted(TEST_DATA.glob("broken_*.h5ad")), ids=lambda p: p.name)
def test_never_raises_on_a_broken_file(tmp_path: Path, source: Path) -> None:
    """Files the checks refuse (or cellxgene does): every route is None or an answer, never an error."""
    paths = Paths(source, source, tmp_path, tmp_path / "a.csv", tmp_path / "g.csv")
    early = EarlyAnswers(source, ViewerOptions(), paths, page_scripts(False))
    queries = {"annotation-name": ["name_0"], "layout-name": ["umap"]}
    for route in ("schema", "config", "colors", "genesets", "annotations/obs", "annotations/var", "layout/obs"):
        got = early.answer(route, queries)
        assert got is None or (isinstance(got[0], str) and isinstance(got[1], bytes)), route
    early.close()
    assert early.answer("colors", {}) is None  # closed: nothing more is read


def test_zz_tally() -> None:
    """How many answers the corpus left to cellxgene (run after the corpus: pytest keeps the file's order)."""
    asked = sum(t.asked for t in TALLY.values())
    none = sum(len(t.none) for t in TALLY.values())
    print(f"\nearly answers: {asked - none} of {asked} answered early; left to cellxgene:")
    for name, tally in TALLY.items():
        if tally.none:
            print(f"  {name}: {', '.join(tally.none)}")
    assert asked


def test_no_heavy_import(tmp_path: Path) -> None:
    """Computing every early answer of the demo imports none of what the early front exists to avoid."""
    script = f"""
import sys
from pathlib import Path
from galaxy_cellxgene.early_answers import EarlyAnswers
from galaxy_cellxgene import early_front, serve
from galaxy_cellxgene.session_files import Paths
from galaxy_cellxgene.settings import ViewerOptions, page_scripts
work = Path({str(tmp_path)!r})
paths = Paths(Path({str(DEMO)!r}), Path({str(DEMO)!r}), work, work / "a.csv", work / "g.csv")
early = EarlyAnswers(paths.prepared, ViewerOptions(), paths, page_scripts(False))
schema = __import__("json").loads(early.answer("schema", {{}})[1])["schema"]
asked = [early.answer(r, {{}}) for r in ("config", "colors", "genesets")]
asked.append(early_front.page(("galaxy/static/finish.js",)))
for column in schema["annotations"]["obs"]["columns"]:
    asked.append(early.answer("annotations/obs", {{"annotation-name": [column["name"]]}}))
asked += [early.answer("annotations/var", {{"annotation-name": [schema["annotations"]["var"]["index"]]}})]
asked += [early.answer("layout/obs", {{"layout-name": [l["name"]]}}) for l in schema["layout"]["obs"]]
assert all(a is not None for a in asked), asked
heavy = sorted(m for m in ("pandas", "anndata", "flask", "scipy", "server") if m in sys.modules)
print(",".join(heavy) or "none")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"
