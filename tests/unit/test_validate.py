"""validate.inspect: each problem a Galaxy user can hit, named, with its fix; all of them at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from galaxy_cellxgene.cli import main
from galaxy_cellxgene.settings import ViewerOptions
from galaxy_cellxgene.validate import Inspection, Problem, inspect
from support.h5ad_builders import GENE_SETS_CSV, N_CELLS, NAN_ROWS, build_adata, cell_names, cell_types, with_obsm


def only_error(inspection: Inspection) -> Problem:
    assert len(inspection.errors) == 1, [str(p) for p in inspection.problems]
    return inspection.errors[0]


def run(path: Path, **options) -> Inspection:
    return inspect(path, ViewerOptions(**options))


def test_good_dataset_has_no_problem(good_h5ad: Path) -> None:
    inspection = run(good_h5ad)
    assert inspection.problems == []
    s = inspection.summary
    assert (s.n_obs, s.n_vars) == (N_CELLS, 30)
    assert {e.name: e.shown for e in s.embeddings} == {"X_pca": True, "X_umap": True}
    assert s.obs_columns["louvain"] == "categorical, 5 values"
    assert s.obs_columns["n_counts"].startswith("continuous")


# ---- not an h5ad at all ----


def test_empty_file(empty_file: Path) -> None:
    problem = only_error(run(empty_file))
    assert "not an HDF5 file" in problem.what
    assert "empty" in problem.what
    assert "h5ad" in problem.fix


def test_text_file(text_file: Path) -> None:
    problem = only_error(run(text_file))
    assert "not an HDF5 file" in problem.what
    assert "gene,cel" in problem.what  # shows how it starts, so the user recognises a CSV
    assert "convert" in problem.fix


def test_hdf5_that_is_not_anndata(plain_hdf5: Path) -> None:
    problem = only_error(run(plain_hdf5))
    assert "not an AnnData" in problem.what
    assert "/X" in problem.what and "/obs" in problem.what
    assert "matrix" in problem.what  # what it does hold
    assert "converted to h5ad" in problem.fix


def test_truncated_hdf5(good_h5ad: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.h5ad"
    truncated.write_bytes(good_h5ad.read_bytes()[:4096])
    problems = run(truncated).errors
    assert problems, "a truncated file must not pass"
    assert any("truncated" in p.what or "not an HDF5" in p.what or "AnnData" in p.what for p in problems)


def damage(path: Path, how: str) -> Path:
    """Damage an h5ad the way broken writers and interrupted copies do, without random bytes."""
    import h5py

    with h5py.File(path, "r+") as f:
        if how == "missing obs index":
            del f["obs"][f["obs"].attrs["_index"]]
        elif how == "dangling X link":
            del f["X"]
            f["X"] = h5py.ExternalLink("/nonexistent/elsewhere.h5ad", "/X")
        elif how == "undecodable attribute":
            f["obs"].attrs["encoding-type"] = np.void(b"\xff\xfe\x00garbage")
        elif how == "obs is a dataset":
            del f["obs"]
            f["obs"] = np.arange(10)
    return path


@pytest.mark.parametrize("how", ["missing obs index", "dangling X link", "undecodable attribute", "obs is a dataset"])
def test_damaged_file_is_a_problem_not_a_traceback(good_h5ad: Path, how: str) -> None:
    inspection = run(damage(good_h5ad, how))
    assert inspection.errors, how
    assert all(p.fix for p in inspection.errors)


def test_dataset_without_cells(make_h5ad: Callable[..., Path]) -> None:
    # cellxgene fails on it with a bare "IndexError: index (0) out of range".
    adata = build_adata()[:0].copy()
    problem = only_error(run(make_h5ad(adata)))
    assert "no cells" in problem.what
    assert "filter" in problem.fix


# ---- embeddings ----


def test_no_embedding(no_embedding_h5ad: Path) -> None:
    problem = only_error(run(no_embedding_h5ad))
    assert "No embedding" in problem.what
    assert "obsm is empty" in problem.what
    assert "X_umap" in problem.fix or "UMAP" in problem.fix


def test_embedding_without_x_prefix(unprefixed_embedding_h5ad: Path) -> None:
    inspection = run(unprefixed_embedding_h5ad)
    problem = only_error(inspection)
    assert "umap: name does not start with X_" in problem.what
    assert "rename the obsm key to start with X_" in problem.fix
    assert [(e.name, e.shown) for e in inspection.summary.embeddings] == [("umap", False)]


def test_embedding_all_nan(all_nan_embedding_h5ad: Path) -> None:
    problem = only_error(run(all_nan_embedding_h5ad))
    assert "X_umap: all values are NaN" in problem.what
    assert "finite" in problem.fix


def test_embedding_with_inf(inf_embedding_h5ad: Path) -> None:
    problem = only_error(run(inf_embedding_h5ad))
    assert "X_umap: contains infinite values" in problem.what


def test_embedding_with_some_nan_rows_warns(nan_rows_h5ad: Path) -> None:
    inspection = run(nan_rows_h5ad)
    assert inspection.errors == []
    assert len(inspection.warnings) == 1
    warning = inspection.warnings[0]
    assert f"NaN coordinates for {NAN_ROWS} of {N_CELLS} cells" in warning.what
    assert "X_umap" in warning.what
    assert "Recompute" in warning.fix


def test_one_bad_embedding_among_good_ones_is_not_an_error(make_h5ad: Callable[..., Path]) -> None:
    adata = build_adata()
    bad = np.full((N_CELLS, 2), np.nan, np.float32)
    inspection = run(make_h5ad(with_obsm(adata, X_umap=adata.obsm["X_umap"], X_tsne=bad)))
    assert inspection.errors == []
    assert {e.name: e.shown for e in inspection.summary.embeddings} == {"X_tsne": False, "X_umap": True}


@pytest.mark.parametrize("name", ["tsne", "X_tsne"])
def test_chosen_embedding_missing(good_h5ad: Path, name: str) -> None:
    problem = only_error(run(good_h5ad, embeddings=(name,)))
    assert "'tsne' cannot be shown: it does not exist" in problem.what
    assert "pca, umap" in problem.fix  # the usable choices


def test_chosen_embedding_unusable_gives_the_reason(make_h5ad: Callable[..., Path]) -> None:
    adata = build_adata()
    bad = np.full((N_CELLS, 2), np.nan, np.float32)
    path = make_h5ad(with_obsm(adata, X_umap=adata.obsm["X_umap"], X_tsne=bad))
    problem = only_error(run(path, embeddings=("X_tsne",)))
    assert "'tsne' cannot be shown: all values are NaN" in problem.what


def test_chosen_embeddings_limit_what_is_shown(good_h5ad: Path) -> None:
    inspection = run(good_h5ad, embeddings=("X_umap",))
    assert inspection.problems == []
    assert {e.name: e.shown for e in inspection.summary.embeddings} == {"X_pca": False, "X_umap": True}


# ---- names ----


def test_duplicate_cell_names(duplicate_obs_h5ad: Path) -> None:
    problem = only_error(run(duplicate_obs_h5ad))
    assert "1 cell names in the obs index (obs_names) are duplicated" in problem.what
    assert "'cell0'" in problem.what
    assert "obs_names_make_unique" in problem.fix


def test_duplicate_gene_names(duplicate_var_h5ad: Path) -> None:
    # The index (Ensembl IDs) chosen explicitly: left empty, the unique symbols would be used.
    problem = only_error(run(duplicate_var_h5ad, var_names="__index__"))
    assert "2 gene names in the var index (var_names) are duplicated" in problem.what
    assert "make gene names unique" in problem.fix


def test_gene_ids_index_defaults_to_the_symbol_column(duplicate_var_h5ad: Path) -> None:
    inspection = run(duplicate_var_h5ad)
    assert inspection.errors == []
    assert inspection.summary.default_var_names == "gene_symbols" and inspection.summary.var_names_defaulted


def test_duplicate_gene_names_are_fine_when_made_unique(duplicate_var_h5ad: Path) -> None:
    assert run(duplicate_var_h5ad, make_var_names_unique=True).errors == []


def test_duplicate_gene_symbols_in_the_chosen_column(duplicate_symbols_h5ad: Path) -> None:
    assert run(duplicate_symbols_h5ad).errors == []  # the index is unique
    problem = only_error(run(duplicate_symbols_h5ad, var_names="gene_symbols"))
    assert "var column 'gene_symbols'" in problem.what
    assert "'MALAT1'" in problem.what
    assert run(duplicate_symbols_h5ad, var_names="gene_symbols", make_var_names_unique=True).errors == []


@pytest.mark.parametrize(("option", "axis"), [("obs_names", "obs"), ("var_names", "var")])
def test_chosen_column_missing(good_h5ad: Path, option: str, axis: str) -> None:
    problem = only_error(run(good_h5ad, **{option: "nope"}))
    assert f"'nope' is not a column of {axis}" in problem.what
    assert ("louvain" if axis == "obs" else "gene_symbols") in problem.what  # the existing choices
    assert "leave" in problem.fix


def test_chosen_cell_name_column_not_unique(good_h5ad: Path) -> None:
    problem = only_error(run(good_h5ad, obs_names="louvain"))
    assert "obs column 'louvain'" in problem.what
    assert f"{N_CELLS - 5} cell names" in problem.what
    assert "unique values" in problem.fix


def test_unique_cell_name_column_is_fine(good_h5ad: Path) -> None:
    assert run(good_h5ad, obs_names="barcode").problems == []


# ---- layers ----


def test_layer_missing(good_h5ad: Path) -> None:
    problem = only_error(run(good_h5ad, layer="counts"))
    assert "layer 'counts' does not exist (layers: none)" in problem.what
    assert "existing layer" in problem.fix


def test_layer_missing_lists_the_layers(layers_h5ad: Path) -> None:
    problem = only_error(run(layers_h5ad, layer="raw_counts"))
    assert "(layers: counts, scaled)" in problem.what
    assert run(layers_h5ad, layer="counts").problems == []


# ---- categories ----


def test_categories_over_the_limit_warn(good_h5ad: Path) -> None:
    inspection = run(good_h5ad, max_category_items=3)
    assert inspection.errors == []
    warnings = [w for w in inspection.warnings if "louvain" in w.what]
    assert len(warnings) == 1
    assert "5 categories, more than the limit of 3" in warnings[0].what
    assert "max category items" in warnings[0].fix
    # barcode (200 unique strings) is over the limit too: a warning, never an error.
    assert any("'barcode' has 200 categories" in w.what for w in inspection.warnings)
    assert all("louvain" not in w.what for w in run(good_h5ad, max_category_items=5).warnings)


# ---- column types cellxgene 1.3.0 cannot handle ----


def test_nullable_integer_column(make_h5ad: Callable[..., Path]) -> None:
    # pandas' Int64 (common in current scanpy output): cellxgene dies loading it with
    # "TypeError: did not understand one of the types; 'None' not accepted", so the prepared
    # file shows it converted (tests/compat loads such files in the real cellxgene).
    import pandas as pd

    adata = build_adata()
    adata.obs["n_genes"] = pd.array(range(N_CELLS), dtype="Int64")
    adata.var["length"] = pd.array([None, *range(1, adata.n_vars)], dtype="Int64")
    inspection = run(make_h5ad(adata))
    assert inspection.problems == []
    assert "obs column 'n_genes' (nullable-integer): shown as integers" in inspection.summary.presented
    assert "var column 'length' (nullable-integer): shown as decimals, missing values as NaN" in (
        inspection.summary.presented
    )
    assert inspection.summary.obs_columns["n_genes"].startswith("continuous")


def test_nullable_boolean_column(make_h5ad: Callable[..., Path]) -> None:
    import pandas as pd

    adata = build_adata()
    adata.obs["complete"] = pd.array([i % 2 == 0 for i in range(N_CELLS)], dtype="boolean")
    adata.obs["missing"] = pd.array([None if i % 9 == 0 else True for i in range(N_CELLS)], dtype="boolean")
    inspection = run(make_h5ad(adata))
    assert inspection.problems == []
    presented = inspection.summary.presented
    assert "obs column 'complete' (nullable-boolean): shown as booleans" in presented
    # Served as they are, every request for the column fails (NAType): shown as categories instead.
    assert any(p.startswith("obs column 'missing' (nullable-boolean): shown as categories") for p in presented)


# ---- previous annotations and gene sets ----


def test_previous_annotations_that_fit(good_h5ad: Path, write_labels) -> None:
    inspection = run(good_h5ad, previous_annotations=str(write_labels({"cell_type": cell_types()})))
    assert inspection.problems == []
    assert inspection.summary.user_categories == ["cell_type"]


def test_previous_annotations_clash_with_obs_column(good_h5ad: Path, write_labels) -> None:
    path = write_labels({"louvain": cell_types(), "mine": cell_types()})
    problem = only_error(run(good_h5ad, previous_annotations=str(path)))
    assert "['louvain']" in problem.what
    assert "same names as obs columns" in problem.what
    assert "Rename" in problem.fix


def test_previous_annotations_from_a_smaller_dataset(good_h5ad: Path, write_labels) -> None:
    path = write_labels({"cell_type": cell_types(150)}, cells=cell_names(150))
    problem = only_error(run(good_h5ad, previous_annotations=str(path)))
    assert f"150 rows but the dataset has {N_CELLS} cells" in problem.what
    assert "another dataset" in problem.what


def test_previous_annotations_naming_other_cells(good_h5ad: Path, write_labels) -> None:
    cells = cell_names()
    cells[10] = "someone_else"
    problem = only_error(run(good_h5ad, previous_annotations=str(write_labels({"t": cell_types()}, cells=cells))))
    assert "name other cells (1 of 200 rows differ; row 11 is 'someone_else'" in problem.what
    assert "'cell10'" in problem.what


def test_previous_annotations_match_the_chosen_cell_name_column(good_h5ad: Path, write_labels) -> None:
    # cellxgene writes the names it shows: with --obs-names barcode, the barcodes.
    barcodes = [f"BC{i:06d}" for i in range(N_CELLS)]
    path = write_labels({"t": cell_types()}, cells=barcodes)
    assert run(good_h5ad, obs_names="barcode", previous_annotations=str(path)).problems == []
    assert len(run(good_h5ad, previous_annotations=str(path)).errors) == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", "not a cellxgene annotations CSV"),
        (b'index,a\n"cell0,x\ncell1,y\n', "not a cellxgene annotations CSV"),
        (b"index,a,a\ncell0,x,y\n", "two categories have the same name"),
        (b"index,a\ncell0,x\ncell0,y\n", "some cell names appear twice"),
        (b"index,,b\ncell0,x,y\n", "a category has no name"),
        (b"# only\n# comments\n", "not a cellxgene annotations CSV"),
    ],
)
def test_malformed_previous_annotations(good_h5ad: Path, tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    problem = only_error(run(good_h5ad, previous_annotations=str(path)))
    assert problem.what.startswith("The previous annotations cannot be used")
    assert expected in problem.what
    assert problem.fix


def test_empty_previous_annotations_file_is_no_categories(good_h5ad: Path, tmp_path: Path) -> None:
    # cellxgene writes 0 bytes when the user deletes every category; resuming from it is legitimate.
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    inspection = run(good_h5ad, previous_annotations=str(path))
    assert inspection.problems == []
    assert inspection.summary.user_categories == []


def test_previous_gene_sets(good_h5ad: Path, tmp_path: Path) -> None:
    path = tmp_path / "gs.csv"
    path.write_text(GENE_SETS_CSV, newline="")
    inspection = run(good_h5ad, previous_gene_sets=str(path))
    assert inspection.problems == []
    assert inspection.summary.gene_sets == ["T markers", "empty set"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name,description,symbol\nset,d,CD4\n", "missing the required column header"),
        ("gene_set_name,gene_set_description,gene_symbol,gene_description\n,d,CD4,\n", "missing required gene set"),
    ],
)
def test_malformed_previous_gene_sets(good_h5ad: Path, tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "gs.csv"
    path.write_text(content)
    problem = only_error(run(good_h5ad, previous_gene_sets=str(path)))
    assert problem.what.startswith("The previous gene sets cannot be used")
    assert expected in problem.what
    assert "gene_set_name,gene_set_description,gene_symbol,gene_description" in problem.fix


# ---- everything at once ----


def test_all_problems_are_reported_at_once(make_h5ad: Callable[..., Path], tmp_path: Path, write_labels) -> None:
    adata = build_adata()
    adata.obs_names = ["cell0", *adata.obs_names[:-1]]
    path = make_h5ad(with_obsm(adata, umap=adata.obsm["X_umap"]))
    gene_sets = tmp_path / "gs.csv"
    gene_sets.write_text("not,a,gene,sets,file\n")
    inspection = run(path, layer="counts", previous_gene_sets=str(gene_sets))
    whats = " | ".join(p.what for p in inspection.errors)
    assert len(inspection.errors) == 4, whats
    for expected in ("cell names", "layer 'counts'", "No embedding", "previous gene sets"):
        assert expected in whats


def test_three_problems_three_messages(make_h5ad: Callable[..., Path]) -> None:
    adata = build_adata()
    names = list(adata.var_names)
    names[1] = names[0]
    adata.var_names = names
    adata.obs_names = ["cell0", *adata.obs_names[:-1]]
    path = make_h5ad(with_obsm(adata))
    assert len(run(path, var_names="__index__").errors) == 3  # the repeated IDs chosen as gene names


def test_check_command_prints_one_line_per_problem(make_h5ad: Callable[..., Path], tmp_path: Path, capsys) -> None:
    adata = build_adata()
    adata.obs_names = ["cell0", *adata.obs_names[:-1]]
    path = make_h5ad(with_obsm(adata, umap=adata.obsm["X_umap"]))
    report = tmp_path / "report.md"
    assert main(["check", str(path), "--layer", "counts", "--report", str(report)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4, lines
    assert all(line.startswith("ERROR: ") and " Fix: " in line for line in lines[:3])
    assert lines[3] == "cellxgene cannot start: 3 problem(s) above."
    text = report.read_text()
    assert "cannot be opened" in text
    assert text.count("- **ERROR**") == 3


def test_check_command_passes_a_good_dataset(good_h5ad: Path, capsys) -> None:
    assert main(["check", str(good_h5ad)]) == 0
    out = capsys.readouterr()
    assert "**Verdict:** this dataset can be opened" in out.out
    assert "- X_umap [200, 2]: shown" in out.out
    assert out.err == ""


# ---- the quick check `view` runs before cellxgene loads the data ----


@pytest.mark.parametrize(
    "fixture",
    [
        "good_h5ad",
        "empty_file",
        "plain_hdf5",
        "no_embedding_h5ad",
        "unprefixed_embedding_h5ad",
        "inf_embedding_h5ad",
        "nan_rows_h5ad",
        "duplicate_var_h5ad",
        "layers_h5ad",
    ],
)
def test_quick_check_finds_what_the_thorough_one_finds(fixture: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    quick, thorough = inspect(path, ViewerOptions(), thorough=False), inspect(path, ViewerOptions())
    assert quick.problems == thorough.problems
    assert quick.summary == thorough.summary


def test_quick_check_leaves_duplicate_cell_names_to_cellxgene(duplicate_obs_h5ad: Path, write_labels) -> None:
    # cellxgene refuses them while loading; `view` then runs the thorough check for the message.
    assert inspect(duplicate_obs_h5ad, ViewerOptions(), thorough=False).errors == []
    # ...unless the cell names are needed anyway: another cell-name column, or previous annotations.
    assert len(inspect(duplicate_obs_h5ad, ViewerOptions(obs_names="louvain"), thorough=False).errors) == 1
    options = ViewerOptions(previous_annotations=str(write_labels({"t": cell_types()})))
    quick = inspect(duplicate_obs_h5ad, options, thorough=False)
    assert any("cell names in the obs index" in p.what for p in quick.errors)


def test_column_kinds_read_lazily_match_cellxgenes_schema(make_h5ad: Callable[..., Path]) -> None:
    # The category limit applies to what cellxgene treats as categorical; read lazily, we must agree.
    import h5py
    import pandas as pd
    from anndata.io import read_elem
    from galaxy_cellxgene.frames import LazyFrame, column_kind
    from server.common.utils.type_conversion_utils import get_schema_type_hint_of_array

    adata = build_adata()
    n = adata.n_obs
    adata.obs["flag"] = np.arange(n) % 2 == 0
    adata.obs["count"] = np.arange(n, dtype=np.int32)
    adata.obs["nullable_bool"] = pd.array([None if i % 9 == 0 else i % 2 == 0 for i in range(n)], dtype="boolean")
    adata.obs["unused_category"] = pd.Categorical(["a"] * n, categories=["a", "b"])
    adata.obs["with_missing"] = pd.Categorical([None if i % 4 else "x" for i in range(n)])
    path = make_h5ad(adata)
    with h5py.File(path, "r") as f:
        lazy, frame = LazyFrame(f["obs"]), read_elem(f["obs"])
        assert list(lazy.columns) == list(frame.columns)
        assert list(lazy.index) == list(frame.index) and len(lazy) == len(frame)
        for column in frame.columns:
            kind, n_values, _ = column_kind(lazy, column)
            cellxgene_type = get_schema_type_hint_of_array(frame[column])["type"]
            assert (kind == "continuous") == (cellxgene_type in ("int32", "float32")), (column, cellxgene_type)
            if kind == "categorical":
                assert n_values == frame[column].nunique(dropna=True), column
            assert list(lazy[column].astype(str)) == list(frame[column].astype(str)), column
