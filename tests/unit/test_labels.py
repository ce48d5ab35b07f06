"""Cell labels and gene sets in cellxgene's own CSV formats: read, write, merge into an h5ad."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from galaxy_cellxgene.cli import main
from galaxy_cellxgene.labels import (
    GENE_SETS_HEADER,
    LabelsError,
    gene_sets_csv,
    labels_csv,
    read_gene_sets,
    read_labels,
)
from galaxy_cellxgene.merge import GENE_SETS_UNS_KEY, merge_into_h5ad
from server.common.genesets import read_gene_sets_tidycsv
from server.common.utils.data_locator import DataLocator
from support.cellxgene_store import FakeAdaptor, body, cellxgene_store, head
from support.h5ad_builders import GENE_SETS_CSV, LABELS_HEADER, N_CELLS, build_adata, cell_names, cell_types


def user_labels(n: int = N_CELLS) -> pd.DataFrame:
    """What cellxgene hands its store after a save: categorical columns, index named `index`."""
    return pd.DataFrame(
        {
            "cell_type": pd.Categorical(cell_types(n)),
            "quality": pd.Categorical(["good" if i % 7 else "unassigned" for i in range(n)]),
        },
        index=pd.Index(cell_names(n), name="index"),
    )


GENE_SETS = {
    "T markers": {
        "geneset_name": "T markers",
        "geneset_description": "Pan T",
        "genes": [
            {"gene_symbol": "SYM1", "gene_description": "CD3E"},
            {"gene_symbol": "SYM2", "gene_description": ""},
        ],
    },
    "empty set": {"geneset_name": "empty set", "geneset_description": "nothing yet", "genes": []},
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- cell labels: format ----


def test_labels_layout(tmp_path: Path) -> None:
    text = labels_csv(user_labels(), LABELS_HEADER)
    lines = text.split("\n")
    assert lines[0].startswith("# ") and lines[1].startswith("# ")
    assert lines[2] == "index,cell_type,quality"
    assert lines[3] == "cell0,T cells,unassigned"
    assert lines[5] == "cell2,unassigned,good"
    assert len(lines) == 3 + N_CELLS + 1 and lines[-1] == ""  # one row per cell, LF endings


def test_labels_byte_identical_to_cellxgene(tmp_path: Path) -> None:
    store = cellxgene_store(tmp_path)
    store.write_labels(user_labels(), FakeAdaptor())
    theirs = Path(store.label_output_file).read_text()
    ours = labels_csv(user_labels(), head(theirs))
    assert ours == theirs
    assert body(ours).startswith("index,cell_type,quality\n")


def test_cellxgene_reads_our_labels(tmp_path: Path) -> None:
    store = cellxgene_store(tmp_path)
    Path(store.label_output_file).write_text(labels_csv(user_labels(), LABELS_HEADER))
    theirs = store.read_labels(FakeAdaptor())
    pd.testing.assert_frame_equal(theirs, read_labels(store.label_output_file))
    assert list(theirs.columns) == ["cell_type", "quality"]
    assert list(theirs["cell_type"].astype(str)) == cell_types()


def test_we_read_cellxgene_labels(tmp_path: Path) -> None:
    store = cellxgene_store(tmp_path)
    store.write_labels(user_labels(), FakeAdaptor())
    labels = read_labels(store.label_output_file)
    assert list(labels.index) == cell_names()
    for column in ("cell_type", "quality"):
        assert list(labels[column].astype(str)) == list(user_labels()[column].astype(str))


def test_empty_file_means_no_categories(tmp_path: Path) -> None:
    # cellxgene writes 0 bytes once the user has deleted every category.
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    labels = read_labels(path)
    assert labels.empty and list(labels.columns) == []


def test_no_categories_still_writes_the_cells(tmp_path: Path) -> None:
    # A 0-byte Galaxy dataset looks like a failed job; we keep the cell column instead.
    text = labels_csv(pd.DataFrame(index=pd.Index(cell_names())), LABELS_HEADER)
    assert body(text).split("\n")[:3] == ["index", "cell0", "cell1"]
    path = tmp_path / "none.csv"
    path.write_text(text)
    labels = read_labels(path)
    assert list(labels.columns) == []
    assert list(labels.index) == cell_names()
    store = cellxgene_store(tmp_path)
    Path(store.label_output_file).write_text(text)
    assert list(store.read_labels(FakeAdaptor()).columns) == []


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("cluster #3", "label"),  # cellxgene's own writer loses everything after '#'
        ("#1", "cell"),  # ArchR names cells sample#barcode
        ("old\rmac", "label"),
        ("type #", "category"),
        ("index", "category"),  # `index,index` would read back as `index.1`
    ],
)
def test_labels_that_cellxgenes_writer_would_break(tmp_path: Path, value: str, where: str) -> None:
    cells, category, labels = cell_names(), "cell_type", cell_types()
    if where == "cell":
        cells[0] = "sample" + value
    elif where == "label":
        labels[0] = value
    else:
        category = value
    frame = pd.DataFrame({category: pd.Categorical(labels)}, index=pd.Index(cells, name="index"))
    path = tmp_path / "labels.csv"
    path.write_text(labels_csv(frame, LABELS_HEADER), newline="")
    back = read_labels(path)
    assert list(back.columns) == [category]
    assert list(back.index) == cells
    assert list(back[category].astype(str)) == labels


# ---- cell labels: malformed files ----


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00binary\x00", "not a cellxgene annotations CSV"),
        (b'index,a\n"cell0,x\n', "not a cellxgene annotations CSV"),
        (b"index,a,a\ncell0,x,y\ncell1,x,y\n", "two categories have the same name"),
        (b"index,a\ncell0,x\ncell0,y\n", "some cell names appear twice"),
        (b"index,,b\ncell0,x,y\n", "a category has no name"),
    ],
)
def test_malformed_labels(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(LabelsError, match=message) as err:
        read_labels(path)
    assert err.value.fix  # every refusal says how to fix it


# ---- gene sets ----


def test_gene_sets_byte_identical_to_cellxgene(tmp_path: Path) -> None:
    store = cellxgene_store(tmp_path)
    store.write_gene_sets(GENE_SETS, 1, FakeAdaptor())
    theirs = Path(store.gene_sets_output_file).read_bytes().decode()
    assert gene_sets_csv(GENE_SETS, head(theirs)) == theirs
    assert gene_sets_csv(list(GENE_SETS.values()), head(theirs)) == theirs


def test_gene_sets_layout() -> None:
    text = gene_sets_csv(GENE_SETS, GENE_SETS_CSV.split("gene_set_name")[0])
    assert text == GENE_SETS_CSV  # two LF comment lines, then CRLF rows
    assert ",".join(GENE_SETS_HEADER) + "\r\n" in text


def test_gene_sets_round_trip_with_cellxgenes_reader(tmp_path: Path) -> None:
    path = tmp_path / "gs.csv"
    path.write_text(gene_sets_csv(GENE_SETS, GENE_SETS_CSV.split("gene_set_name")[0]), newline="")
    assert read_gene_sets_tidycsv(DataLocator(str(path))) == GENE_SETS
    assert read_gene_sets(path) == GENE_SETS


def test_empty_gene_sets_file(tmp_path: Path) -> None:
    path = tmp_path / "gs.csv"
    path.write_bytes(b"")
    assert read_gene_sets(path) == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("gene_set,description\nx,y\n", "missing the required column header"),
        (",".join(GENE_SETS_HEADER) + "\n,desc,CD4,\n", "missing required gene set name on line 2"),
        ("\ufffd\x00", "missing the required column header"),
    ],
)
def test_malformed_gene_sets(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "gs.csv"
    path.write_text(content)
    with pytest.raises(LabelsError, match=message) as err:
        read_gene_sets(path)
    assert "gene_set_name,gene_set_description,gene_symbol,gene_description" in err.value.fix


def test_gene_sets_file_with_a_huge_field(tmp_path: Path) -> None:
    # Python's csv refuses fields over 128 KiB: a user error, not a traceback.
    path = tmp_path / "gs.csv"
    path.write_text(",".join(GENE_SETS_HEADER) + "\nset," + "x" * 200_000 + ",CD4,\n")
    with pytest.raises(LabelsError):
        read_gene_sets(path)


# ---- merge into the h5ad ----


@pytest.fixture
def source(make_h5ad: Callable[..., Path]) -> Path:
    return make_h5ad(name="source")


def test_merge_adds_categorical_columns_equal_to_the_labels(source: Path, tmp_path: Path) -> None:
    before = digest(source)
    output = merge_into_h5ad(source, tmp_path / "merged.h5ad", user_labels(), GENE_SETS)
    merged, original = ad.read_h5ad(output), ad.read_h5ad(source)
    for column in ("cell_type", "quality"):
        assert isinstance(merged.obs[column].dtype, pd.CategoricalDtype)
        assert list(merged.obs[column].astype(str)) == list(user_labels()[column].astype(str))
    assert "unassigned" in merged.obs["cell_type"].cat.categories
    # Everything else kept as it was.
    assert list(merged.obs_names) == list(original.obs_names)
    pd.testing.assert_frame_equal(merged.obs[original.obs.columns], original.obs)
    assert np.array_equal(merged.X.toarray(), original.X.toarray())
    assert np.array_equal(merged.obsm["X_umap"], original.obsm["X_umap"])
    assert digest(source) == before, "the input dataset must never change"
    assert os.stat(output).st_mode & 0o777 == 0o644  # readable by a Galaxy running as another user


def test_merge_keeps_gene_sets_in_uns(source: Path, tmp_path: Path) -> None:
    merged = ad.read_h5ad(merge_into_h5ad(source, tmp_path / "merged.h5ad", None, GENE_SETS))
    table = merged.uns[GENE_SETS_UNS_KEY]
    assert list(table.columns) == GENE_SETS_HEADER
    assert table.values.tolist() == [
        ["T markers", "Pan T", "SYM1", "CD3E"],
        ["T markers", "Pan T", "SYM2", ""],
        ["empty set", "nothing yet", "", ""],
    ]


def test_merge_of_labels_read_from_a_cellxgene_file(source: Path, tmp_path: Path, write_labels) -> None:
    labels = read_labels(write_labels({"cell_type": cell_types()}))
    merged = ad.read_h5ad(merge_into_h5ad(source, tmp_path / "merged.h5ad", labels, None))
    assert list(merged.obs["cell_type"].astype(str)) == cell_types()
    assert sorted(merged.obs["cell_type"].cat.categories) == ["B cells", "T cells", "unassigned"]


def test_merge_accepts_labels_keyed_by_another_cell_name_column(source: Path, tmp_path: Path) -> None:
    # Made with --obs-names barcode: cellxgene wrote barcodes, the obs index is cellN.
    labels = user_labels()
    labels.index = pd.Index([f"BC{i:06d}" for i in range(N_CELLS)], name="index")
    merged = ad.read_h5ad(merge_into_h5ad(source, tmp_path / "merged.h5ad", labels, None))
    assert list(merged.obs_names) == cell_names()
    assert list(merged.obs["cell_type"].astype(str)) == cell_types()


def assert_nothing_left(folder: Path, expected: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == expected


def test_clash_leaves_no_output_and_no_temp_file(source: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    labels = user_labels().rename(columns={"quality": "louvain"})
    before = digest(source)
    with pytest.raises(LabelsError, match=r"\['louvain'\] already exist as obs columns") as err:
        merge_into_h5ad(source, out_dir / "merged.h5ad", labels, GENE_SETS)
    assert "Rename" in err.value.fix
    assert_nothing_left(out_dir, set())
    assert digest(source) == before


def test_failed_merge_keeps_the_previous_output(source: Path, tmp_path: Path) -> None:
    output = tmp_path / "out" / "merged.h5ad"
    output.parent.mkdir()
    output.write_bytes(b"previous merged dataset")
    labels = user_labels()
    labels.index = pd.Index([f"other{i}" for i in range(N_CELLS)], name="index")
    with pytest.raises(LabelsError, match="do not match this dataset's cells"):
        merge_into_h5ad(source, output, labels, None)
    assert output.read_bytes() == b"previous merged dataset"
    assert_nothing_left(output.parent, {"merged.h5ad"})


def test_labels_from_a_smaller_dataset_are_refused(source: Path, tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match=f"150 rows but the dataset has {N_CELLS} cells"):
        merge_into_h5ad(source, tmp_path / "merged.h5ad", user_labels(150), None)
    assert not (tmp_path / "merged.h5ad").exists()


def test_merge_can_replace_a_column_when_asked(source: Path, tmp_path: Path) -> None:
    labels = user_labels().rename(columns={"quality": "louvain"})
    merged = ad.read_h5ad(merge_into_h5ad(source, tmp_path / "merged.h5ad", labels, None, overwrite=True))
    assert list(merged.obs["louvain"].astype(str)) == list(labels["louvain"].astype(str))


def test_merge_with_nothing_to_add_copies_the_dataset(source: Path, tmp_path: Path) -> None:
    output = merge_into_h5ad(source, tmp_path / "merged.h5ad", pd.DataFrame(), {})
    merged, original = ad.read_h5ad(output), ad.read_h5ad(source)
    pd.testing.assert_frame_equal(merged.obs, original.obs)
    assert GENE_SETS_UNS_KEY not in merged.uns


def test_merge_command(source: Path, tmp_path: Path, write_labels, capsys) -> None:
    gene_sets = tmp_path / "gs.csv"
    gene_sets.write_text(GENE_SETS_CSV, newline="")
    output = tmp_path / "merged.h5ad"
    argv = ["merge", str(source), "--annotations", str(write_labels({"cell_type": cell_types()}))]
    assert main([*argv, "--gene-sets", str(gene_sets), "--output", str(output)]) == 0
    assert "merged 1 categories (cell_type) and 2 gene sets" in capsys.readouterr().out
    assert list(ad.read_h5ad(output).obs["cell_type"].astype(str)) == cell_types()


def test_merge_command_refuses_a_clash(source: Path, tmp_path: Path, write_labels, capsys) -> None:
    output = tmp_path / "merged.h5ad"
    argv = ["merge", str(source), "--annotations", str(write_labels({"louvain": cell_types()}))]
    assert main([*argv, "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert "already exist as obs columns" in err and "Fix:" in err
    assert not output.exists()
    assert main([*argv, "--output", str(output), "--replace-columns"]) == 0


def test_merge_command_refuses_a_non_h5ad(tmp_path: Path, write_labels, capsys) -> None:
    bogus = tmp_path / "x.h5ad"
    bogus.write_text("not hdf5")
    argv = ["merge", str(bogus), "--annotations", str(write_labels({"t": cell_types()}))]
    assert main([*argv, "--output", str(tmp_path / "out.h5ad")]) == 2
    assert "not an HDF5 file" in capsys.readouterr().err


def test_built_data_is_big_enough() -> None:
    # Guard for the fixtures themselves: the real UI breaks under ~150 cells.
    assert build_adata().n_obs >= 200
