"""The markdown report of sections 1-4: one table per section, paired ratios beside the figures."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bench.common import paired


def fmt(x: float | None, spec: str = ".2f") -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "–"
    return format(x, spec)


def ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}x"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def vs(rows: list[dict], row: dict, ref: str, key: str, match: Sequence[str]) -> float | None:
    """Paired ratio of `row` to the row of contender `ref` measured beside it (same match keys)."""
    if row["contender"] == ref:
        return None
    for other in rows:
        if other["contender"] == ref and all(other[k] == row[k] for k in match):
            mine = [r[key] if isinstance(r, dict) else r for r in row["raw"]]
            theirs = [r[key] if isinstance(r, dict) else r for r in other["raw"]]
            if len(mine) == len(theirs):
                return paired(mine, theirs)
    return None


READY_HEADERS = [
    *("cells", "case", "contender", "ready s (min–max)", "vs plain", "vs 1.1.1 recipe", "prep s", "prep peak MiB"),
    *("server peak MiB at ready", "CPU s", "CPU vs plain", "vs runtime"),
]


def ready_row(rows: list[dict], r: dict) -> list[str]:
    return [
        r["cells"],
        r["case"],
        r["contender"],
        f"{fmt(r['ready_s'])} ({fmt(r['ready_min'])}–{fmt(r['ready_max'])})",
        ratio(r.get("x_plain")),
        ratio(r.get("x_recipe-1.1.1")),
        fmt(r["prep_s"]),
        fmt(r["prep_peak_mib"], ".0f") if r["prep_peak_mib"] else "–",
        fmt(r["peak_mib"], ".0f"),
        fmt(r["cpu_s"]),
        ratio(vs(rows, r, "plain", "cpu_s", ("cells", "case"))),
        ratio(vs(rows, r, "runtime", "ready_s", ("cells", "case"))),
    ]


MEMORY_HEADERS = [
    *("cells", "input", "mode", "contender", "peak MiB", "vs plain", "peak at ready", "RSS after", "ready s"),
    "vs runtime",
]


def memory_row(rows: list[dict], r: dict) -> list[str]:
    return [
        *(r["cells"], r["input"], r["mode"], r["contender"]),
        fmt(r["peak_mib"], ".0f"),
        ratio(r.get("x_plain")),
        fmt(r["peak_at_ready_mib"], ".0f"),
        fmt(r["rss_mib"], ".0f"),
        fmt(r["ready_s"]),
        ratio(vs(rows, r, "runtime", "peak_mib", ("cells", "input", "mode"))),
    ]


SERVE_HEADERS = [
    *("cells", "clients", "contender", "req/s", "req/s vs plain", "p50 ms", "p99 ms", "p99 vs plain"),
    *("gene p50 ms", "server CPU ms/req", "client CPU %", "errors", "server peak MiB", "req/s vs runtime"),
]


def serve_row(rows: list[dict], r: dict) -> list[str]:
    return [
        *(r["cells"], str(r["clients"]), r["contender"]),
        fmt(r["rps"], ".0f"),
        ratio(r.get("x_plain_rps")),
        fmt(r["p50_ms"], ".1f"),
        fmt(r["p99_ms"], ".1f"),
        ratio(r.get("x_plain_p99")),
        fmt(r["expr_p50_ms"], ".1f"),
        fmt(r["server_cpu_ms_per_req"], ".1f"),
        fmt(r["client_cpu_pct"], ".0f"),
        str(int(r["errors"])),
        fmt(r["peak_mib"], ".0f"),
        ratio(vs(rows, r, "runtime", "rps", ("cells", "clients"))),
    ]


SAVE_HEADERS = ["cells", "contender", "save s (min–max)", "vs plain", "vs runtime", "rows in output"]


def save_row(rows: list[dict], r: dict) -> list[str]:
    return [
        r["cells"],
        r["contender"],
        f"{fmt(r['save_s'], '.3f')} ({fmt(r['save_min'], '.3f')}–{fmt(r['save_max'], '.3f')})",
        ratio(r.get("x_plain")),
        ratio(vs(rows, r, "runtime", "", ("cells",))),
        str(r["rows_written"]),
    ]


Section = tuple[str, list[str], Callable[[list[dict], dict], list[str]]]
SECTIONS: dict[str, Section] = {
    "ready": ("1. Time to ready (start -> /health -> schema -> first gene served)", READY_HEADERS, ready_row),
    "memory": (
        "2. Server memory (peak RSS after ready + 20 genes + a layout, RSS settled)",
        MEMORY_HEADERS,
        memory_row,
    ),
    "serve": ("3. Serving (closed-loop clients, random genes, 1 in 10 layout requests)", SERVE_HEADERS, serve_row),
    "save": ("4. One label save (2 categories, PUT until answered, output file written)", SAVE_HEADERS, save_row),
}


def render(results: dict, meta: dict) -> str:
    parts = [
        f"Measured {meta['date']} on {meta['machine']}; load average {meta['load_before']} before, "
        f"{meta['load_after']} after (the machine is shared: read the paired ratios, "
        "not absolute seconds).\n\n"
        f"Command: `{meta['command']}` ({meta['elapsed_min']:.1f} min); N={meta['n']} (medians; ratios are "
        f"medians of per-repetition ratios, contenders alternating)."
    ]
    for key, (title, headers, row_of) in SECTIONS.items():
        rows = results.get(key)
        if rows:
            parts.append(f"### {title}\n\n" + table(headers, [row_of(rows, r) for r in rows]))
    return "\n\n".join(parts) + "\n"
