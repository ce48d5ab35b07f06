"""4. One label save: PUT annotations/obs (2 categories) including the write to the output file."""

from __future__ import annotations

import random
import time
from pathlib import Path

from bench import procs
from bench.cases import Dataset, Maker, plain_launch, runtime_makers
from bench.common import log, med, paired, rotate
from bench.harness import Bench

Servers = dict[str, tuple[procs.Started, Path]]


def run(bench: Bench, datasets: list[Dataset]) -> list[dict]:
    ds = max(datasets, key=lambda d: d.n_cells)
    chosen = makers(bench, ds)
    started: Servers = {}
    out_rows: dict[str, int] = {}
    try:
        for name, make in chosen:
            run_dir = bench.run_dir(f"save-{ds.label}-{name}")
            st = bench.launch(make(run_dir), run_dir, ds.genes[0], ds.n_cells)
            started[name] = (st, run_dir)
        times = measure(bench, ds, chosen, started)
        for name, (_st, run_dir) in started.items():
            out_rows[name] = rows_written(run_dir / "annotations.csv")
    finally:
        for st, run_dir in started.values():
            bench.finish(st, run_dir)
    return summarize(ds, times, out_rows)


def makers(bench: Bench, ds: Dataset) -> list[Maker]:
    def plain(d: Path) -> procs.Launch:
        files = ["--annotations-file", str(d / "annotations.csv"), "--gene-sets-file", str(d / "gene_sets.csv")]
        return plain_launch(ds, d, files)

    return [("plain", plain), *runtime_makers(ds, bench.args.runtimes)]


def bench_labels(ds: Dataset) -> dict[str, list[str]]:
    rng = random.Random(5)
    return {
        "bench_clusters": [f"cluster_{rng.randrange(12)}" for _ in range(ds.n_cells)],
        "bench_selection": ["selected" if rng.random() < 0.2 else "unassigned" for _ in range(ds.n_cells)],
    }


def measure(bench: Bench, ds: Dataset, chosen: list[Maker], started: Servers) -> dict[str, list[float]]:
    from galaxy_cellxgene_testkit.ui_client import UiClient  # cellxgene's encoder: only this part needs it

    labels = bench_labels(ds)
    times: dict[str, list[float]] = {m[0]: [] for m in chosen}
    for rep in range(bench.args.n):
        for name, _ in rotate(chosen, rep):
            st, _run_dir = started[name]
            client = UiClient(f"http://127.0.0.1:{st.port}/")
            t0 = time.perf_counter()
            resp = client.put_labels(labels)
            elapsed = time.perf_counter() - t0
            if resp.status_code != 200:
                raise procs.BenchError(f"{name}: label save {resp.status_code}: {resp.text[:300]}")
            times[name].append(elapsed)
            log(f"save {ds.label} {name}: {elapsed:.3f} s")
    return times


def rows_written(out: Path) -> int:
    # The saved file must hold every cell: a save that skipped the write would look fast.
    return sum(1 for line in out.open() if not line.startswith("#")) - 1 if out.exists() else -1


def summarize(ds: Dataset, times: dict[str, list[float]], out_rows: dict[str, int]) -> list[dict]:
    rows = []
    for name, ts in times.items():
        row = {
            "cells": ds.label,
            "contender": name,
            "n": len(ts),
            "save_s": med(ts),
            "save_min": min(ts),
            "save_max": max(ts),
            "rows_written": out_rows.get(name, -1),
            "raw": ts,
        }
        if name != "plain":
            row["x_plain"] = paired(ts, times["plain"])
        rows.append(row)
    return rows
