"""User-chosen element identifiers become file names and URL segments: nothing may escape."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from galaxy_cellxgene.multi.datasets import Dataset, read_facts
from galaxy_cellxgene.multi.landing import render_landing
from galaxy_cellxgene.multi.names import MAX_NAME_LENGTH, safe_name, unique_safe_names
from galaxy_cellxgene.multi.session import MultiSession
from galaxy_cellxgene.session_files import OutputDirs
from galaxy_cellxgene.settings import ViewerOptions
from galaxy_cellxgene.subset_routes import finish_stems
from hypothesis import example, given
from hypothesis import strategies as st
from support.multi import make_dataset

SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("day0", "day0"),
        ("sample_1.filtered", "sample_1.filtered"),
        ("../x", "x"),
        ("a/b", "a_b"),
        ("..", "dataset"),
        ("", "dataset"),
        (".hidden", "hidden"),
        ("day 7 – Müller", "day_7_Muller"),
        ("细胞", "dataset"),
        ("a\x00b\nc", "a_b_c"),
        ("<script>alert(1)</script>", "script_alert_1_script"),
        ("x" * 500, "x" * MAX_NAME_LENGTH),
    ],
)
def test_safe_name(name: str, expected: str) -> None:
    assert safe_name(name) == expected


@given(st.lists(st.text(min_size=0, max_size=300), min_size=1, max_size=8))
def test_unique_safe_names_are_safe_distinct_and_stable(names: list[str]) -> None:
    slugs = unique_safe_names(names)
    assert len(slugs) == len(names)
    assert len({s.lower() for s in slugs}) == len(slugs)
    for slug in slugs:
        assert SAFE.match(slug), slug
        assert len(slug) <= MAX_NAME_LENGTH
        assert ".." not in slug.split("/")
        # As an output file name it stays in its folder.
        folder = Path("/out")
        assert (folder / f"{slug}.csv").resolve().parent == folder
    assert unique_safe_names(names) == slugs


def test_names_that_fold_alike_stay_apart() -> None:
    assert unique_safe_names(["a/b", "a?b", "a_b", "A_B", "a/b"]) == [
        "a_b",
        unique_safe_names(["a/b", "a?b"])[1],
        unique_safe_names(["a/b", "a?b", "a_b"])[2],
        unique_safe_names(["a/b", "a?b", "a_b", "A_B"])[3],
        unique_safe_names(["a/b", "a?b", "a_b", "A_B", "a/b"])[4],
    ]
    slugs = unique_safe_names(["a/b", "a?b", "a_b", "A_B", "a/b"])
    assert len({s.lower() for s in slugs}) == 5
    # A name that is already safe keeps its identity when it comes first.
    assert unique_safe_names(["day0", "day 0"]) == ["day0", "day_0"]


def test_read_facts_reads_metadata_only(tmp_path: Path) -> None:
    path = make_dataset(tmp_path / "a.h5ad", 230, seed=2, n_vars=25)
    facts = read_facts(path)
    assert (facts.n_obs, facts.n_vars) == (230, 25)
    assert facts.embeddings == ("X_tsne", "X_umap")
    assert facts.cost_bytes > 0


def test_landing_page_escapes_user_text(tmp_path: Path) -> None:
    path = make_dataset(tmp_path / "a.h5ad", 200, seed=0)
    hostile = '<img src=x onerror="alert(1)">&'
    entry = Dataset(name=hostile, slug=safe_name(hostile), source=path, facts=read_facts(path))
    dirs = OutputDirs(tmp_path / "a", tmp_path / "g", tmp_path / "m", tmp_path / "w")
    multi = MultiSession([entry], dirs, ViewerOptions(), title="<b>title</b>")
    page = render_landing(multi)
    assert hostile not in page
    assert html.escape(hostile) in page
    assert "<b>title</b>" not in page
    assert f'href="d/{entry.slug}/"' in page


NAMES = st.text(min_size=1, max_size=30)


ASKED = st.lists(st.lists(NAMES, min_size=1, max_size=3), max_size=4)  # each subset's labels


@given(st.lists(st.tuples(NAMES, ASKED), min_size=1, max_size=4))
@example([("a", [["b-c"]]), ("a-b", [["c"]]), ("a.b", [["c"]]), ("a", [["b", "c"]])])
def test_subsets_at_finish_of_every_dataset_share_one_folder_without_a_clash(
    datasets: list[tuple[str, list[list[str]]]],
) -> None:
    """The list tool writes every dataset's "Save at Finish" subsets into one folder: whatever the
    element identifiers and the labels ("a" with "b-c" and "a-b" with "c" included), each file name
    is safe, stays in the folder and is no other subset's."""
    dirs = OutputDirs(Path("a"), Path("g"), None, Path("w"), subsets=Path("subsets"))
    slugs = unique_safe_names(name for name, _ in datasets)
    files = []
    for slug, (_, asked) in zip(slugs, datasets, strict=True):
        paths = dirs.paths(slug, Path("in.h5ad"), reload=False)
        assert paths.subsets_out == Path("subsets")
        files += [f"{stem}.h5ad" for stem in finish_stems(paths.subsets_prefix, [tuple(c) for c in asked])]
    assert len({f.lower() for f in files}) == len(files), files
    for name in files:
        assert "/" not in name and not name.startswith(".") and re.fullmatch(r"[A-Za-z0-9_.+-]+", name), name
