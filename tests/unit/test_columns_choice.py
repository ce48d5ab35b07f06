"""store_choice.py: in memory or on disk, from X's metadata and the job's memory; and why."""

from __future__ import annotations

import pytest
from galaxy_cellxgene import columns
from galaxy_cellxgene.settings import ViewerOptions
from galaxy_cellxgene.store_choice import X_SHARE, XStorage, choose_store, copy_bytes

MIB = 1 << 20
# 100,000 cells x 20,000 genes at 4%: 80 M non-zeros, 610 MiB as a float32 column copy.
ATLAS = XStorage("csr_matrix", "float32", (100_000, 20_000), 80_000_000)


def test_copy_size_counts_values_row_numbers_and_column_pointers() -> None:
    assert copy_bytes(ATLAS) == 80_000_000 * 8 + 20_001 * 8
    assert copy_bytes(XStorage("csr_matrix", "float64", (10, 3), 7)) == 7 * 12 + 4 * 8


@pytest.mark.parametrize(
    ("budget_mb", "kind"),
    [
        (0, "memory"),  # no budget known: as before, the fastest store
        (int(copy_bytes(ATLAS) / MIB / X_SHARE) + 1, "memory"),  # just fits
        (int(copy_bytes(ATLAS) / MIB / X_SHARE) - 1, "disk"),  # just over
        (512, "disk"),  # X larger than the whole job
    ],
)
def test_the_budget_decides_for_a_row_major_x(budget_mb: int, kind: str) -> None:
    choice = choose_store(ATLAS, budget_mb=budget_mb)
    assert choice.kind == kind
    assert choice.build is (kind == "disk")
    assert ("GALAXY_MEMORY_MB unset" in choice.reason) is (budget_mb == 0)
    if budget_mb:
        assert f"{budget_mb:,} MiB" in choice.reason  # the log says which budget it compared with


def test_forcing_wins_over_the_budget_and_backed_means_disk() -> None:
    assert choose_store(ATLAS, "disk", budget_mb=10**6).kind == "disk"
    assert choose_store(ATLAS, "memory", budget_mb=1).kind == "memory"
    assert "--x-store memory" in choose_store(ATLAS, "memory", budget_mb=1).reason
    assert choose_store(ATLAS, backed=True, budget_mb=10**6).kind == "disk"
    assert "backed" in choose_store(ATLAS, backed=True).reason


def test_a_column_major_x_is_read_in_place_or_left_to_cellxgene() -> None:
    csc = XStorage("csc_matrix", "float32", ATLAS.shape, ATLAS.nnz)
    assert choose_store(csc, budget_mb=10**6).kind == "cellxgene"  # fits: cellxgene holds it, columns are slices
    over = choose_store(csc, budget_mb=512)
    assert over.kind == "disk" and over.build is False and "in place" in over.reason
    assert choose_store(csc, "disk").build is False


@pytest.mark.parametrize(
    "layout",
    [
        XStorage("array", "float32", (100, 10), 1000),
        XStorage("csr_matrix", "int32", (100, 10), 50),  # cellxgene's backed reader refuses integers
    ],
)
def test_kinds_without_a_copy_stay_with_cellxgene_even_when_forced(layout: XStorage) -> None:
    for forced in ("auto", "memory", "disk"):
        choice = choose_store(layout, forced, budget_mb=1)
        assert choice.kind == "cellxgene" and "cellxgene reads it itself" in choice.reason


@pytest.mark.parametrize(
    ("memory_mb", "env", "expected"),
    [
        (0, {"GALAXY_MEMORY_MB": "2048"}, 2048),
        (0, {"GALAXY_MEMORY_MB": "2048.0"}, 2048),
        (1000, {"GALAXY_MEMORY_MB": "2048"}, 1000),  # --memory-mb wins
        (0, {}, 0),
        (0, {"GALAXY_MEMORY_MB": "lots"}, 0),  # unreadable: unknown, not a crash
    ],
)
def test_the_budget_comes_from_the_option_or_galaxys_variable(memory_mb: int, env: dict, expected: int) -> None:
    assert columns.memory_budget_mb(ViewerOptions(memory_mb=memory_mb), env) == expected


def test_the_cli_maps_the_store_options() -> None:
    from galaxy_cellxgene.cli import build_parser, options_from_args

    args = build_parser().parse_args(["view", "in.h5ad", "--annotations-out", "a", "--gene-sets-out", "g"])
    assert (options_from_args(args).x_store, options_from_args(args).memory_mb) == ("auto", 0)
    args = build_parser().parse_args(
        ["view", "in.h5ad", "--annotations-out", "a", "--gene-sets-out", "g", "--x-store", "disk", "--memory-mb", "64"]
    )
    assert (options_from_args(args).x_store, options_from_args(args).memory_mb) == ("disk", 64)
