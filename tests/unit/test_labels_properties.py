"""Property tests: what cellxgene's CSV formats can carry, and that our files carry exactly that.

Measured limits (cellxgene 1.3.0 reads labels with pandas `comment="#"`, gene sets with `csv`):
- cell labels: any text but NUL survives our writer, in cell names, category names and labels,
  because we quote fields holding `#` or a bare CR (cellxgene's own writer does not, and loses them).
  A category name must not be blank or look like pandas' `Unnamed: N` placeholder.
- labels made in cellxgene's UI (letters, digits, `_ . ( ) -` and single inner spaces) are written
  byte for byte as cellxgene writes them, except a category named `index`: cellxgene writes the
  header `index,index`, which reads back as `index.1`; we leave the index column unnamed instead.
- gene sets: names within cellxgene's own rule (ASCII 32-126, no leading, trailing or double spaces)
  survive, except a name starting with `#`, which cellxgene's reader takes for a comment line.
  Descriptions and gene symbols may hold any text but NUL.
"""

from __future__ import annotations

import csv
import string
import tempfile
from pathlib import Path

import pandas as pd
from galaxy_cellxgene.labels import _rows_from_distinct_values, gene_sets_csv, labels_csv, read_gene_sets, read_labels
from hypothesis import given
from hypothesis import strategies as st
from server.common.genesets import read_gene_sets_tidycsv
from server.common.utils.data_locator import DataLocator
from support.cellxgene_store import FakeAdaptor, cellxgene_store, head
from support.h5ad_builders import LABELS_HEADER

# Anything a CSV file can hold in UTF-8: no lone surrogates; NUL ends a field in pandas' C parser.
any_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
# cellxgene's UI rule for category names and labels (annotationNameIsErroneous).
ui_text = st.text(string.ascii_letters + string.digits + "_.()- ", min_size=1, max_size=12).filter(
    lambda s: s == s.strip() and "  " not in s
)
category_name = any_text.filter(lambda s: s.strip() != "" and not s.startswith("Unnamed:"))


@st.composite
def label_tables(draw, names=any_text, categories=category_name) -> pd.DataFrame:
    n_cells = draw(st.integers(1, 25))
    cells = draw(st.lists(names, min_size=n_cells, max_size=n_cells, unique=True))
    columns = draw(st.lists(categories, min_size=1, max_size=4, unique=True))
    data = {}
    for column in columns:
        # A few labels reused across cells, as a user labels clusters; `unassigned` as cellxgene writes.
        pool = [*draw(st.lists(names, min_size=1, max_size=4)), "unassigned"]
        data[column] = pd.Categorical([draw(st.sampled_from(pool)) for _ in cells])
    return pd.DataFrame(data, index=pd.Index(cells, name="index"))


def assert_same_labels(back: pd.DataFrame, sent: pd.DataFrame) -> None:
    assert [str(c) for c in back.columns] == [str(c) for c in sent.columns]
    assert [str(i) for i in back.index] == [str(i) for i in sent.index]
    for got, want in zip(back.columns, sent.columns, strict=True):
        assert list(back[got].astype(str)) == list(sent[want].astype(str))


@given(label_tables())
def test_any_labels_round_trip_through_our_files(labels: pd.DataFrame) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = cellxgene_store(Path(folder))
        path = Path(store.label_output_file)
        path.write_text(labels_csv(labels, LABELS_HEADER), encoding="utf-8", newline="")
        assert_same_labels(read_labels(path), labels)
        # cellxgene reads the same file the same way: resuming in the viewer shows the same labels.
        assert_same_labels(store.read_labels(FakeAdaptor()), labels)


# A category named `index` is the one deliberate difference: cellxgene's `index,index` reads back wrong.
@given(label_tables(names=ui_text, categories=ui_text.filter(lambda s: s != "index")))
def test_labels_made_in_the_ui_are_written_as_cellxgene_writes_them(labels: pd.DataFrame) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = cellxgene_store(Path(folder))
        store.write_labels(labels, FakeAdaptor())
        theirs = Path(store.label_output_file).read_text(encoding="utf-8")
        assert labels_csv(labels, head(theirs)) == theirs
        assert_same_labels(read_labels(store.label_output_file), labels)


def with_variations(labels: pd.DataFrame, missing: bool, as_text: bool, unnamed: bool) -> pd.DataFrame:
    frame = labels.copy()
    first = frame.columns[0]
    if missing:  # a cell without a label: pandas writes na_rep ""
        frame.iloc[0, 0] = None
    if as_text:  # cellxgene's decoder may hand over plain object columns
        frame[first] = frame[first].astype(object)
    return frame.rename_axis(None) if unnamed else frame


@given(label_tables(), st.booleans(), st.booleans(), st.booleans())
def test_the_fast_label_writer_writes_what_pandas_writes(labels, missing, as_text, unnamed) -> None:
    frame = with_variations(labels, missing, as_text, unnamed)
    fast = _rows_from_distinct_values(frame)
    if fast is not None:  # None: pandas writes it (names needing quotes, non-text labels)
        assert fast == frame.to_csv(quoting=csv.QUOTE_MINIMAL, lineterminator="\n")


@given(label_tables(), st.booleans())
def test_outputs_before_any_label_are_written_as_pandas_writes_them(labels, unnamed) -> None:
    frame = pd.DataFrame(index=labels.index.rename(None if unnamed else "index"))
    fast = _rows_from_distinct_values(frame)
    if fast is not None:
        assert fast == frame.to_csv(quoting=csv.QUOTE_MINIMAL, lineterminator="\n")


@given(label_tables(names=ui_text, categories=ui_text), st.booleans(), st.booleans(), st.booleans())
def test_ui_labels_take_the_fast_writer(labels, missing, as_text, unnamed) -> None:
    frame = with_variations(labels, missing, as_text, unnamed)
    fast = _rows_from_distinct_values(frame)
    assert fast is not None
    assert fast == frame.to_csv(quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    if not unnamed:
        cells_only = pd.DataFrame(index=frame.index)
        assert _rows_from_distinct_values(cells_only) == cells_only.to_csv(lineterminator="\n")


# cellxgene's server-side rule for gene-set names (validate_gene_sets), minus a leading '#'.
gene_set_name = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=15).filter(
    lambda s: s == s.strip() and "  " not in s and not s.startswith("#")
)


@st.composite
def gene_set_collections(draw) -> dict[str, dict]:
    names = draw(st.lists(gene_set_name, max_size=4, unique=True))
    gene_sets = {}
    for name in names:
        symbols = draw(st.lists(any_text.filter(bool), max_size=4, unique=True))
        gene_sets[name] = {
            "geneset_name": name,
            "geneset_description": draw(any_text),
            "genes": [{"gene_symbol": s, "gene_description": draw(any_text)} for s in symbols],
        }
    return gene_sets


@given(gene_set_collections())
def test_gene_sets_round_trip_with_cellxgenes_reader(gene_sets: dict[str, dict]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = cellxgene_store(Path(folder))
        store.write_gene_sets(gene_sets, 1, FakeAdaptor())
        theirs = Path(store.gene_sets_output_file).read_bytes().decode("utf-8")
        ours = gene_sets_csv(gene_sets, head(theirs))
        assert ours == theirs
        path = Path(folder) / "ours.csv"
        path.write_bytes(ours.encode("utf-8"))
        assert read_gene_sets_tidycsv(DataLocator(str(path))) == gene_sets
        assert read_gene_sets(path) == gene_sets


def test_gene_set_names_starting_with_hash_survive(tmp_path: Path) -> None:
    # cellxgene's own reader drops them (the row reads as a comment); ours quotes them and keeps them.
    gene_sets = {"#1 set": {"geneset_name": "#1 set", "geneset_description": "", "genes": []}}
    path = tmp_path / "gs.csv"
    path.write_bytes(gene_sets_csv(gene_sets, "# header\n").encode())
    assert read_gene_sets(path) == gene_sets
