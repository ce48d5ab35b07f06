"""The markdown report of the atlas section (its own block in docs/benchmarks.md).

One row per contender, with the floors of the same size and run beside it (issue 25): the cells
shown against reading obs and the embedding with h5py, each click against reading the gene from
the store and sending its bytes over loopback; a disk contender's first gene cold and, from the
store cache, cached.
"""

from __future__ import annotations

from bench import atlas
from bench.report import fmt, ratio, table

HEADERS = [
    *("cells", "contender", "opened", "cells shown s", "floor s", "vs floor", "first gene s (cold / cached)"),
    *("cached vs cold", "vs plain", "click median / worst ms", "click floor ms", "median / worst vs floor"),
    *("peak MiB", "peak vs plain", "store build s", "store disk MiB"),
]


def cell(r: dict, key: str, spec: str) -> str:
    return fmt(r.get(key), spec) if r.get("opened") else "–"


def pair(a: str, b: str) -> str:
    return "–" if a == b == "–" else f"{a} / {b}"


def first_gene(r: dict, cached: dict | None) -> tuple[str, str]:
    """(cold / cached seconds, cached vs cold) for a disk contender with a cached twin."""
    if not r.get("opened"):
        return "–", "–"
    if cached is None or not cached.get("opened"):
        return fmt(r.get("first_gene_s"), ".1f"), "–"
    cold, warm = r.get("first_gene_s"), cached.get("first_gene_s")
    return pair(fmt(cold, ".1f"), fmt(warm, ".1f")), ratio(warm / cold if cold and warm else None)


def row_of(r: dict, floor: dict, cached: dict | None) -> list[str]:
    opened = "yes" if r.get("opened") else f"no ({atlas.failure_reason(r)[:70]})"
    gene, cached_vs_cold = first_gene(r, cached)
    return [
        r["cells"],
        r["contender"],
        opened,
        cell(r, "cells_shown_s", ".2f"),
        fmt(floor.get("cells_shown_s"), ".2f"),
        ratio(r.get("cells_vs_floor")),
        gene,
        cached_vs_cold,
        ratio(r.get("first_vs_plain")),
        pair(cell(r, "click_median_ms", ".1f"), cell(r, "click_worst_ms", ".1f")),
        pair(fmt(floor.get("click_median_ms"), ".1f"), fmt(floor.get("click_worst_ms"), ".1f")),
        ratio(r.get("click_vs_floor")) + " / " + ratio(r.get("worst_vs_floor")),
        cell(r, "peak_mib", ".0f"),
        ratio(r.get("peak_vs_plain")),
        fmt(r.get("build_s"), ".1f") if r.get("store_kind") == "disk" else "–",
        fmt(r.get("build_mib"), ".0f") if r.get("build_mib") else "–",
    ]


def rows_of(rows: list[dict]) -> list[list[str]]:
    by = {(r["cells"], r["contender"]): r for r in rows}
    return [
        row_of(r, by.get((r["cells"], "floor"), {}), by.get((r["cells"], r["contender"] + "-cached")))
        for r in rows
        if r["contender"] != "floor"
    ]


def render_atlas(rows: list[dict], meta: dict) -> str:
    head = (
        f"Measured {meta['date']} on {meta['machine']}; load average {meta['load_before']} before, "
        f"{meta['load_after']} after. Command: `{meta['command']}` ({meta['elapsed_min']:.1f} min); "
        f"every contender under `prlimit --data={meta['limit_gib']:g}GiB`; "
        f"{meta['clicks']} gene clicks per run (random genes and the most detected one), medians of "
        f"{meta['reps']} run(s). Floors, measured in the same runs: a fresh Python reading every obs "
        "column and the embedding with h5py (cells), and each gene read from the built store, laid "
        "out dense and sent over loopback (clicks).\n\n"
    )
    return head + table(HEADERS, rows_of(rows)) + "\n"
