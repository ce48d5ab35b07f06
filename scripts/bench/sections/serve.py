"""3. Serving: requests/s, p50/p99 for closed-loop clients (random genes, 1 in 10 layouts)."""

from __future__ import annotations

import random
from pathlib import Path

from bench import procs
from bench.cases import Dataset, Maker, plain_launch, runtime_makers
from bench.common import MIB, log, med, paired, rotate
from bench.harness import Bench
from bench.load import run_load

Servers = dict[str, tuple[procs.Started, Path]]


def run(bench: Bench, datasets: list[Dataset]) -> list[dict]:
    rows = []
    for ds in datasets:
        if ds.label not in bench.args.serve_sizes and not bench.args.quick:
            continue
        chosen: list[Maker] = [("plain", lambda d, v=ds: plain_launch(v, d)), *runtime_makers(ds, bench.args.runtimes)]
        started: Servers = {}
        try:
            for name, make in chosen:
                run_dir = bench.run_dir(f"serve-{ds.label}-{name}")
                st = bench.launch(make(run_dir), run_dir, ds.genes[0], ds.n_cells)
                procs.wait_rss_settled(st)
                started[name] = (st, run_dir)
            per = measure(bench, ds, chosen, started)
            peaks = {name: procs.sample_tree(st.pid).peak_kib / MIB for name, (st, _) in started.items()}
        finally:
            for st, run_dir in started.values():
                bench.finish(st, run_dir)
        rows += summarize(bench, ds, chosen, per, peaks)
    return rows


def measure(bench: Bench, ds: Dataset, chosen: list[Maker], started: Servers) -> dict[tuple[str, int], list[dict]]:
    genes = random.Random(11).sample(ds.genes, min(500, len(ds.genes)))
    per: dict[tuple[str, int], list[dict]] = {}
    args = bench.args
    for rep in range(args.serve_reps):
        for clients in args.clients:
            for name, _ in rotate(chosen, rep + clients):
                st = started[name][0]
                # Warm-up at the same load: connection set-up, first-touch page faults.
                run_load(st.port, st.pid, st.var_column, genes, "umap", clients, args.warm_s, rep)
                res = run_load(st.port, st.pid, st.var_column, genes, "umap", clients, args.duration, rep + 1)
                per.setdefault((name, clients), []).append(res.as_dict())
                log(
                    f"serve {ds.label} c={clients} {name}: {res.rps:.0f} req/s "
                    f"p50 {res.p50_ms:.1f} p99 {res.p99_ms:.1f} ms, err {res.errors}, "
                    f"server {res.server_cpu_ms_per_req:.1f} ms CPU/req, "
                    f"client {res.client_cpu_pct:.0f}%"
                )
    return per


def summarize(
    bench: Bench, ds: Dataset, chosen: list[Maker], per: dict[tuple[str, int], list[dict]], peaks: dict[str, float]
) -> list[dict]:
    rows = []
    for clients in bench.args.clients:
        for name, _ in chosen:
            recs = per[(name, clients)]
            row = {
                "cells": ds.label,
                "clients": clients,
                "contender": name,
                "n": len(recs),
                **{k: med(r[k] for r in recs) for k in recs[0] if k != "clients"},
                "peak_mib": peaks[name],
                "raw": recs,
            }
            if name != "plain":
                base = per[("plain", clients)]
                row["x_plain_rps"] = paired([r["rps"] for r in recs], [r["rps"] for r in base])
                row["x_plain_p99"] = paired([r["p99_ms"] for r in recs], [r["p99_ms"] for r in base])
            rows.append(row)
    return rows
