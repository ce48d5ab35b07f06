"""The markdown report of the atlas section (its own block in docs/benchmarks.md)."""

from __future__ import annotations

from bench import atlas
from bench.report import fmt, ratio, table

HEADERS = [
    *("cells", "contender", "opened", "cells shown s", "vs floor", "first gene s", "vs plain", "click median ms"),
    *("click worst ms", "median / worst vs floor", "click vs plain", "peak MiB", "peak vs plain", "store build s"),
    "store disk MiB",
]


def cell(r: dict, key: str, spec: str) -> str:
    return fmt(r.get(key), spec) if r.get("opened") else "–"


def row_of(r: dict) -> list[str]:
    opened = "yes" if r.get("opened") else f"no ({atlas.failure_reason(r)[:70]})"
    return [
        r["cells"],
        r["contender"],
        opened,
        cell(r, "cells_shown_s", ".1f"),
        ratio(r.get("cells_vs_floor")),
        cell(r, "first_gene_s", ".1f"),
        ratio(r.get("first_vs_plain")),
        cell(r, "click_median_ms", ".1f"),
        cell(r, "click_worst_ms", ".1f"),
        ratio(r.get("click_vs_floor")) + " / " + ratio(r.get("worst_vs_floor")),
        ratio(r.get("click_vs_plain")),
        cell(r, "peak_mib", ".0f"),
        ratio(r.get("peak_vs_plain")),
        fmt(r.get("build_s"), ".1f") if r.get("store_kind") == "disk" else "–",
        fmt(r.get("build_mib"), ".0f") if r.get("build_mib") else "–",
    ]


def render_atlas(rows: list[dict], meta: dict) -> str:
    head = (
        f"Measured {meta['date']} on {meta['machine']}; load average {meta['load_before']} before, "
        f"{meta['load_after']} after. Command: `{meta['command']}` ({meta['elapsed_min']:.1f} min); "
        f"every contender under `prlimit --data={meta['limit_gib']:g}GiB`; "
        f"{meta['clicks']} gene clicks per run (random genes and the most detected one), medians of "
        f"{meta['reps']} run(s).\n\n"
    )
    return head + table(HEADERS, [row_of(r) for r in rows]) + "\n"
