"""1. Time to ready: process start -> /health ok -> schema -> first expression served, per case."""

from __future__ import annotations

from bench import procs
from bench.cases import CASES, Case, Dataset, Maker, plain_launch, recipe_launch, runtime_launch
from bench.common import MIB, log, med, paired, rotate
from bench.harness import Bench


def run(bench: Bench, datasets: list[Dataset]) -> list[dict]:
    rows = []
    for ds in datasets:
        for case_name in bench.args.cases:
            if (case_name == "unique" and not ds.unique_symbols) or (case_name == "layer" and not ds.layer):
                continue
            samples = measure(bench, ds, CASES[case_name])
            rows += summarize(ds, case_name, samples)
    return rows


def makers(bench: Bench, ds: Dataset, case: Case) -> list[Maker]:
    out: list[Maker] = []
    if case.name == "plain":
        out.append(("plain", lambda d: plain_launch(ds, d)))
    out.append(("recipe-1.1.1", lambda d: recipe_launch(ds, d, case)))
    for rt, root in bench.args.runtimes.items():
        out.append((rt, lambda d, n=rt, r=root: runtime_launch(ds, d, case, (), n, r)))
    return [m for m in out if m[0] in bench.args.contenders or m[0] in bench.args.runtimes]


def measure(bench: Bench, ds: Dataset, case: Case) -> dict[str, list[dict]]:
    chosen = makers(bench, ds, case)
    samples: dict[str, list[dict]] = {m[0]: [] for m in chosen}
    reps = bench.args.n + (1 if bench.args.warmup else 0)
    for rep in range(reps):
        for name, make in rotate(chosen, rep):
            run_dir = bench.run_dir(f"ready-{ds.label}-{case.name}-{name}")
            st = bench.launch(make(run_dir), run_dir, case.gene(ds), ds.n_cells)
            rec = record(st)
            bench.finish(st, run_dir)
            if bench.args.warmup and rep == 0:
                continue  # page cache, .pyc files, first-run effects: not measured
            samples[name].append(rec)
            log(f"ready {ds.label} {case.name} {name}: {rec['ready_s']:.2f} s, {rec['peak_mib']:.0f} MiB")
    return samples


def record(st: procs.Started) -> dict:
    sample = st.ready_sample
    assert sample is not None
    return {
        "ready_s": st.ready_s,
        "health_s": st.health_s,
        "prep_s": st.pre_s,
        "prep_peak_mib": st.pre_peak_kib / MIB,
        "peak_mib": sample.peak_kib / MIB,
        "cpu_s": st.pre_cpu_s + sample.cpu_total_s,
        "encoding": st.encoding,
    }


def summarize(ds: Dataset, case_name: str, samples: dict[str, list[dict]]) -> list[dict]:
    base = "plain" if "plain" in samples else "recipe-1.1.1"
    rows = []
    for name, recs in samples.items():
        row = {
            "cells": ds.label,
            "case": case_name,
            "contender": name,
            "n": len(recs),
            "ready_s": med(r["ready_s"] for r in recs),
            "ready_min": min(r["ready_s"] for r in recs),
            "ready_max": max(r["ready_s"] for r in recs),
            **{key: med(r[key] for r in recs) for key in ("health_s", "prep_s", "prep_peak_mib", "peak_mib", "cpu_s")},
            "raw": recs,
        }
        for ref in ("plain", "recipe-1.1.1"):
            if ref in samples and ref != name:
                row[f"x_{ref}"] = paired([r["ready_s"] for r in recs], [r["ready_s"] for r in samples[ref]])
        row["baseline"] = base
        rows.append(row)
    return rows
