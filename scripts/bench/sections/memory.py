"""2. Server memory: peak RSS (VmHWM) after the first genes, with/without layers, in memory or backed."""

from __future__ import annotations

import dataclasses
import random

from data.make_bench_data import dataset_name

from bench import procs
from bench.cases import Dataset, Maker, plain_launch, runtime_makers
from bench.common import MIB, log, med, paired, rotate
from bench.harness import Bench

VARIANTS = [("layers", "memory"), ("nolayers", "memory"), ("layers", "backed"), ("nolayers", "backed")]


def run(bench: Bench, datasets: list[Dataset]) -> list[dict]:
    rows = []
    variants = VARIANTS[:1] if bench.args.quick else VARIANTS
    variants = [v for v in variants if f"{v[0]}-{v[1]}" in bench.args.mem_variants]
    for ds in datasets:
        for layers, mode in variants:
            path = ds.path if layers == "layers" else ds.path.with_name(dataset_name(ds.n_cells, layers=False))
            if not path.exists():
                log(f"memory: {path.name} missing, skipped")
                continue
            dsv = ds if path == ds.path else dataclasses.replace(ds, path=path)
            samples = measure(bench, dsv, layers, mode)
            rows += summarize(ds, layers, mode, samples)
    return rows


def makers(bench: Bench, ds: Dataset, mode: str) -> list[Maker]:
    extra = ["--backed"] if mode == "backed" else []
    return [("plain", lambda d: plain_launch(ds, d, extra)), *runtime_makers(ds, bench.args.runtimes, extra)]


def measure(bench: Bench, ds: Dataset, layers: str, mode: str) -> dict[str, list[dict]]:
    chosen = makers(bench, ds, mode)
    samples: dict[str, list[dict]] = {m[0]: [] for m in chosen}
    rng = random.Random(7)
    for rep in range(bench.args.mem_reps):
        for name, make in rotate(chosen, rep):
            run_dir = bench.run_dir(f"mem-{ds.label}-{layers}-{mode}-{name}")
            st = bench.launch(make(run_dir), run_dir, ds.genes[0], ds.n_cells)
            rec = record(st, ds, rng)
            bench.finish(st, run_dir)
            samples[name].append(rec)
            log(f"memory {ds.label} {layers} {mode} {name}: peak {rec['peak_mib']:.0f} MiB")
    return samples


def record(st: procs.Started, ds: Dataset, rng: random.Random) -> dict:
    ready = st.ready_sample
    assert ready is not None
    client = procs.Http(st.port)
    # The first genes a user clicks, and the embedding: what a session touches early.
    for gene in rng.sample(ds.genes, 20):
        client.get(procs.expression_path(st.var_column, gene), procs.BINARY_HEADERS)
    client.get(procs.layout_path("umap"), procs.BINARY_HEADERS)
    client.close()
    settled = procs.wait_rss_settled(st)
    return {
        "ready_s": st.ready_s,
        "peak_at_ready_mib": ready.peak_kib / MIB,
        "peak_mib": settled.peak_kib / MIB,
        "rss_mib": settled.rss_total_kib / MIB,
    }


def summarize(ds: Dataset, layers: str, mode: str, samples: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for name, recs in samples.items():
        row = {
            "cells": ds.label,
            "input": layers,
            "mode": mode,
            "contender": name,
            "n": len(recs),
            **{key: med(r[key] for r in recs) for key in ("peak_mib", "peak_at_ready_mib", "rss_mib", "ready_s")},
            "raw": recs,
        }
        if name != "plain" and "plain" in samples:
            row["x_plain"] = paired([r["peak_mib"] for r in recs], [r["peak_mib"] for r in samples["plain"]])
        rows.append(row)
    return rows
