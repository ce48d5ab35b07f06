"""view-many's own options: the memory budget an admin sets, and how datasets are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from galaxy_cellxgene.cli import view_many_parser as build_parser
from galaxy_cellxgene.multi.names import unique_safe_names
from galaxy_cellxgene.view_many import (
    match_previous,
    memory_budget_bytes,
    parse_items,
    previous_folders,
    stage_previous,
)

MB = 2**20


@pytest.mark.parametrize(
    ("cli", "env", "expected"),
    [
        (None, {}, None),
        (512, {}, 512 * MB),
        (0, {"GALAXY_CELLXGENE_MEMORY_BUDGET_MB": "100"}, None),  # the command line wins, 0 = no limit
        (None, {"GALAXY_CELLXGENE_MEMORY_BUDGET_MB": "100"}, 100 * MB),
        (None, {"GALAXY_CELLXGENE_MEMORY_BUDGET_MB": "100", "GALAXY_MEMORY_MB": "8000"}, 100 * MB),
        (None, {"GALAXY_MEMORY_MB": "8000"}, 6000 * MB),  # Galaxy's job memory, a quarter kept back
        (None, {"GALAXY_MEMORY_MB": "not a number"}, None),
        (None, {"GALAXY_CELLXGENE_MEMORY_BUDGET_MB": "0", "GALAXY_MEMORY_MB": "8000"}, None),
    ],
)
def test_memory_budget(cli: int | None, env: dict[str, str], expected: int | None) -> None:
    assert memory_budget_bytes(cli, env) == expected


def test_datasets_from_arguments_and_json(tmp_path: Path) -> None:
    listing = tmp_path / "datasets.json"
    listing.write_text(json.dumps([{"name": 'it\'s "quoted" $(rm -rf /)', "path": "/data/x.dat"}]))
    args = build_parser().parse_args(
        [
            "--dataset",
            "a=b=/data/dataset_1.dat",  # split at the last '=': names may hold one, Galaxy paths do not
            "--datasets-json",
            str(listing),
            "--annotations-dir",
            "a",
            "--gene-sets-dir",
            "g",
        ]
    )
    assert parse_items(args) == [
        ("a=b", Path("/data/dataset_1.dat")),
        ('it\'s "quoted" $(rm -rf /)', Path("/data/x.dat")),
    ]


@pytest.mark.parametrize("bad", ["no-equals-sign", "=/path", "name="])
def test_malformed_dataset_argument_is_refused(bad: str) -> None:
    args = build_parser().parse_args(["--dataset", bad, "--annotations-dir", "a", "--gene-sets-dir", "g"])
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_items(args)


def test_earlier_files_are_matched_by_dataset_name_and_linked_under_safe_names(tmp_path: Path) -> None:
    earlier = tmp_path / "earlier.csv"
    earlier.write_text("index,x\n")
    slug_of = {"day 7 – Müller": "day_7_Muller", "../../etc": "etc"}
    earlier_lists = [("day 7 – Müller", earlier), ("../../etc", earlier), ("gone", earlier)]
    matched, unmatched = match_previous(slug_of, earlier_lists)
    assert matched == {"day_7_Muller": earlier, "etc": earlier}
    assert unmatched == ["gone"]
    folder = stage_previous(matched, tmp_path / "work" / "previous")
    assert sorted(p.name for p in folder.iterdir()) == ["day_7_Muller.csv", "etc.csv"]
    assert (folder / "etc.csv").resolve() == earlier.resolve()
    assert stage_previous(matched, folder) == folder  # a restart in the same work dir relinks


def test_earlier_work_comes_as_a_folder_or_a_list_not_both(tmp_path: Path) -> None:
    listing = tmp_path / "earlier.json"
    listing.write_text("[]")
    outputs = ["--annotations-dir", "a", "--gene-sets-dir", "g", "--work-dir", str(tmp_path / "w")]
    both = ["--previous-annotations-json", str(listing), "--previous-annotations-dir", str(tmp_path)]
    args = build_parser().parse_args([*outputs, *both])
    with pytest.raises(ValueError, match="not both"):
        previous_folders(args, [])


def test_no_element_name_reaches_the_staged_resume_files(tmp_path: Path) -> None:
    """Elements named like the staging folders keep their resume files apart (each dataset's
    work folder is work/<slug>, where cellxgene keeps `annotations.csv` and `gene-sets.csv`)."""
    from types import SimpleNamespace

    names = ["annotations", "previous-annotations", "previous-gene-sets", ".previous-annotations", "gene-sets"]
    work = tmp_path / "work"
    earlier = {}
    for name in names:
        earlier[name] = tmp_path / f"earlier-{len(earlier)}.csv"
        earlier[name].write_text(f"index,{name}\n")
    listing = tmp_path / "earlier.json"
    listing.write_text(json.dumps([{"name": n, "path": str(p)} for n, p in earlier.items()]))
    outputs = ["--annotations-dir", "a", "--gene-sets-dir", "g", "--work-dir", str(work)]
    earlier_lists = ["--previous-annotations-json", str(listing), "--previous-gene-sets-json", str(listing)]
    args = build_parser().parse_args([*outputs, *earlier_lists])
    datasets = [SimpleNamespace(name=n, slug=s) for n, s in zip(names, unique_safe_names(names), strict=True)]
    staged_labels, staged_sets, _ = previous_folders(args, datasets)
    own_folders = {work / d.slug for d in datasets}
    for folder in (staged_labels, staged_sets):
        assert folder not in own_folders and not any(folder.is_relative_to(own) for own in own_folders)
    for d in datasets:
        assert (staged_labels / f"{d.slug}.csv").read_text() == f"index,{d.name}\n"
        assert (staged_sets / f"{d.slug}.csv").read_text() == f"index,{d.name}\n"
