#!/usr/bin/env python
"""Benchmarks of issue 6: this runtime against plain `cellxgene launch` and Galaxy's 1.1.1 recipe.

Measured in one run, contenders alternating within every repetition, medians of N and paired
ratios (contender / baseline per repetition, then the median), so a busy shared machine slows
both sides of a ratio alike:

  ready   process start -> /health ok -> schema -> first expression (GET data/var) served
  memory  peak RSS (VmHWM) of the server after the first genes, with/without layers, backed
  serve   requests/s, p50/p99 for 1/4/16 closed-loop clients (random genes, 1 in 10 layouts)
  save    one label save (PUT annotations/obs, 2 categories) including the write to the output
  atlas   issue 17: 20,000-gene datasets (bench-data/atlas_*.h5ad), plain vs the runtime with X's
          column copy in memory and on disk: first gene, gene clicks, peak memory, build cost

Usage:
  .venv/bin/python scripts/data/make_bench_data.py            # once: bench-data/synth_*.h5ad
  .venv/bin/python scripts/benchmark.py                   # everything (about 20 minutes)
  .venv/bin/python scripts/benchmark.py --quick           # smoke test: demo and 10k cells, N=1
  .venv/bin/python scripts/benchmark.py --write-docs      # and refresh docs/benchmarks.md
  .venv/bin/python scripts/benchmark.py --only atlas --write-docs   # issue 17 (make_bench_data.py --atlas first)
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import datetime as dt
import json
import os
import platform
import random
import shlex
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# scripts/ (this file's folder) is on sys.path when it runs as a script: bench/ and data/ are packages there.
from bench import atlas, procs
from bench.load import run_load
from data.make_bench_data import atlas_name, dataset_name
from galaxy_cellxgene import store_cache

REPO = Path(__file__).resolve().parent.parent

VENV = REPO / ".venv"
PY = str(VENV / "bin" / "python")
CELLXGENE = str(VENV / "bin" / "cellxgene")
RECIPE = str(REPO / "scripts" / "bench" / "recipe_111.py")
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- benchmark:begin -->", "<!-- benchmark:end -->"
ATLAS_BEGIN, ATLAS_END = "<!-- atlas:begin -->", "<!-- atlas:end -->"
MIB = 1024.0


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def med(xs: Iterable[float]) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")


def paired(a: Sequence[float], b: Sequence[float]) -> float:
    """Median of per-repetition ratios a_i / b_i."""
    return med(x / y for x, y in zip(a, b, strict=True) if y)


def rotate(xs: list, k: int) -> list:
    k %= len(xs)
    return xs[k:] + xs[:k]


def runtime_available() -> bool:
    return (REPO / "tools" / "cellxgene" / "galaxy_cellxgene" / "cli.py").exists()


# --------------------------------------------------------------------------- inputs


@dataclass
class Dataset:
    path: Path
    n_cells: int
    genes: list[str]  # var index values
    unique_symbols: list[str]  # gene_symbols values that are already unique (same after make-unique)
    layer: str | None = None  # the layer the `layer` case shows
    name: str | None = None  # "demo" for the repository's demo dataset

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return f"{self.n_cells // 1000}k" if self.n_cells % 1000 == 0 else str(self.n_cells)


DEMO = REPO / "test-data" / "pbmc_demo.h5ad"


def load_dataset(path: Path, name: str | None = None) -> Dataset:
    import anndata
    import h5py

    with h5py.File(path, "r") as f:
        var = anndata.io.read_elem(f["var"])
        n_cells = int(f["obs"][f["obs"].attrs["_index"]].shape[0])
        layers = sorted(f["layers"]) if "layers" in f else []
    symbols = var["gene_symbols"].astype(str) if "gene_symbols" in var else None
    unique = [] if symbols is None else list(symbols[~symbols.duplicated(keep=False)])
    # Read it once so every contender starts from a warm page cache.
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass
    layer = "counts" if "counts" in layers else (layers[0] if layers else None)
    return Dataset(path, n_cells, [str(g) for g in var.index], unique, layer, name)


# --------------------------------------------------------------------------- contenders


@dataclass
class Case:
    name: str  # plain | unique | layer
    runtime_args: list[str]
    recipe_args: list[str]
    gene: Callable[[Dataset], str]


CASES = {
    "plain": Case("plain", [], [], lambda d: d.genes[len(d.genes) // 3]),
    "unique": Case(
        "unique",
        ["--var-names", "gene_symbols", "--make-var-names-unique"],
        ["--var-name", "gene_symbols", "--make-unique"],
        lambda d: d.unique_symbols[len(d.unique_symbols) // 3],
    ),
    "layer": Case("layer", ["--layer", "{layer}"], ["--layer", "{layer}"], lambda d: d.genes[len(d.genes) // 3]),
}


def plain_launch(ds: Dataset, run_dir: Path, extra: Sequence[str] = ()) -> procs.Launch:
    return procs.Launch("plain", [CELLXGENE, "--no-upgrade-check", "launch", str(ds.path), "--port", "{port}", *extra])


def recipe_launch(ds: Dataset, run_dir: Path, case: Case, extra: Sequence[str] = ()) -> procs.Launch:
    # The 1.1.1 tool works on a copy named after the dataset in /tmp (its `fancy_name`).
    fancy = Path("/tmp") / f"galaxy_cellxgene_bench_{ds.path.stem}_{os.getpid()}.h5ad"
    pre: list[Sequence[str]] = []
    if case.recipe_args:
        pre.append([PY, RECIPE, str(ds.path), str(fancy), *(a.format(layer=ds.layer) for a in case.recipe_args)])
    else:
        pre.append(["cp", str(ds.path), str(fancy)])
    pre.append(["mkdir", "-p", "annotation_files"])
    server = [CELLXGENE, "--no-upgrade-check", "launch", "--port", "{port}"]
    server += ["--user-generated-data-dir", "annotation_files", *extra, str(fancy)]
    return procs.Launch("recipe-1.1.1", server, pre, cleanup=[fancy])


def runtime_launch(
    ds: Dataset,
    run_dir: Path,
    case: Case | None,
    extra: Sequence[str] = (),
    name: str = "runtime",
    root: Path = REPO / "tools" / "cellxgene",
) -> procs.Launch:
    """`python -m galaxy_cellxgene view` from the package under `root` (a variant: a patched copy)."""
    server = [PY, "-m", "galaxy_cellxgene", "view", str(ds.path)]
    server += ["--annotations-out", str(run_dir / "annotations.csv")]
    server += ["--gene-sets-out", str(run_dir / "gene_sets.csv")]
    server += ["--port", "{port}", "--register", "never", "--idle-timeout", "0"]
    server += ["--work-dir", str(run_dir / "work")]
    server += [*(a.format(layer=ds.layer) for a in (case.runtime_args if case else [])), *extra]
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return procs.Launch(name, server, env={"PYTHONPATH": path})


# --------------------------------------------------------------------------- runs


@dataclass
class Bench:
    args: argparse.Namespace
    out_dir: Path
    results: dict = field(default_factory=dict)
    run_counter: int = 0

    def run_dir(self, name: str) -> Path:
        self.run_counter += 1
        # The pid keeps two harnesses (say, a quick check beside a full run) out of each other's way.
        d = self.out_dir / "runs" / f"{os.getpid()}-{self.run_counter:04d}-{name}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d

    def launch(self, launch: procs.Launch, run_dir: Path, gene: str, n_cells: int) -> procs.Started:
        st = procs.start(launch, procs.free_port(), run_dir, dict(os.environ))
        try:
            rows = procs.wait_ready(st, gene)
        except BaseException:
            procs.stop(st)
            raise
        if rows != n_cells:
            procs.stop(st)
            raise procs.BenchError(f"{launch.name}: expression answer has {rows} rows, want {n_cells}")
        return st

    def finish(self, st: procs.Started, run_dir: Path) -> None:
        procs.stop(st)
        if not self.args.keep_runs:
            shutil.rmtree(run_dir, ignore_errors=True)

    # ------------------------------------------------------------------ 1. time to ready

    def bench_ready(self, datasets: list[Dataset]) -> list[dict]:
        rows = []
        for ds in datasets:
            for case_name in self.args.cases:
                case = CASES[case_name]
                if (case_name == "unique" and not ds.unique_symbols) or (case_name == "layer" and not ds.layer):
                    continue
                makers: list[tuple[str, Callable[[Path], procs.Launch]]] = []
                if case_name == "plain":
                    makers.append(("plain", lambda d, ds=ds: plain_launch(ds, d)))
                makers.append(("recipe-1.1.1", lambda d, ds=ds, c=case: recipe_launch(ds, d, c)))
                for rt, root in self.args.runtimes.items():
                    makers.append((rt, lambda d, ds=ds, c=case, n=rt, r=root: runtime_launch(ds, d, c, (), n, r)))
                makers = [m for m in makers if m[0] in self.args.contenders or m[0] in self.args.runtimes]
                samples: dict[str, list[dict]] = {m[0]: [] for m in makers}
                reps = self.args.n + (1 if self.args.warmup else 0)
                for rep in range(reps):
                    for name, make in rotate(makers, rep):
                        run_dir = self.run_dir(f"ready-{ds.label}-{case_name}-{name}")
                        st = self.launch(make(run_dir), run_dir, case.gene(ds), ds.n_cells)
                        sample = st.ready_sample
                        assert sample is not None
                        rec = {
                            "ready_s": st.ready_s,
                            "health_s": st.health_s,
                            "prep_s": st.pre_s,
                            "prep_peak_mib": st.pre_peak_kib / MIB,
                            "peak_mib": sample.peak_kib / MIB,
                            "cpu_s": st.pre_cpu_s + sample.cpu_total_s,
                            "encoding": st.encoding,
                        }
                        self.finish(st, run_dir)
                        if self.args.warmup and rep == 0:
                            continue  # page cache, .pyc files, first-run effects: not measured
                        samples[name].append(rec)
                        log(f"ready {ds.label} {case_name} {name}: {rec['ready_s']:.2f} s, {rec['peak_mib']:.0f} MiB")
                base = "plain" if "plain" in samples else "recipe-1.1.1"
                for name, recs in samples.items():
                    row = {
                        "cells": ds.label,
                        "case": case_name,
                        "contender": name,
                        "n": len(recs),
                        "ready_s": med(r["ready_s"] for r in recs),
                        "ready_min": min(r["ready_s"] for r in recs),
                        "ready_max": max(r["ready_s"] for r in recs),
                        "health_s": med(r["health_s"] for r in recs),
                        "prep_s": med(r["prep_s"] for r in recs),
                        "prep_peak_mib": med(r["prep_peak_mib"] for r in recs),
                        "peak_mib": med(r["peak_mib"] for r in recs),
                        "cpu_s": med(r["cpu_s"] for r in recs),
                        "raw": recs,
                    }
                    for ref in ("plain", "recipe-1.1.1"):
                        if ref in samples and ref != name:
                            row[f"x_{ref}"] = paired([r["ready_s"] for r in recs], [r["ready_s"] for r in samples[ref]])
                    row["baseline"] = base
                    rows.append(row)
        return rows

    # ------------------------------------------------------------------ 2. memory

    def bench_memory(self, datasets: list[Dataset]) -> list[dict]:
        rows = []
        variants = [
            ("layers", "memory"),
            ("nolayers", "memory"),
            ("layers", "backed"),
            ("nolayers", "backed"),
        ]
        if self.args.quick:
            variants = variants[:1]
        variants = [v for v in variants if f"{v[0]}-{v[1]}" in self.args.mem_variants]
        for ds in datasets:
            for layers, mode in variants:
                path = ds.path if layers == "layers" else ds.path.with_name(dataset_name(ds.n_cells, layers=False))
                if not path.exists():
                    log(f"memory: {path.name} missing, skipped")
                    continue
                dsv = ds if path == ds.path else dataclasses.replace(ds, path=path)
                plain_extra = ["--backed"] if mode == "backed" else []
                runtime_extra = ["--backed"] if mode == "backed" else []
                makers = [("plain", lambda d, x=plain_extra, v=dsv: plain_launch(v, d, x))]
                for rt, root in self.args.runtimes.items():
                    makers.append(
                        (rt, lambda d, x=runtime_extra, v=dsv, n=rt, r=root: runtime_launch(v, d, None, x, n, r))
                    )
                samples: dict[str, list[dict]] = {m[0]: [] for m in makers}
                rng = random.Random(7)
                for rep in range(self.args.mem_reps):
                    for name, make in rotate(makers, rep):
                        run_dir = self.run_dir(f"mem-{ds.label}-{layers}-{mode}-{name}")
                        st = self.launch(make(run_dir), run_dir, ds.genes[0], ds.n_cells)
                        ready = st.ready_sample
                        assert ready is not None
                        client = procs.Http(st.port)
                        # The first genes a user clicks, and the embedding: what a session touches early.
                        for gene in rng.sample(ds.genes, 20):
                            client.get(procs.expression_path(st.var_column, gene), procs.BINARY_HEADERS)
                        client.get(procs.layout_path("umap"), procs.BINARY_HEADERS)
                        client.close()
                        settled = procs.wait_rss_settled(st)
                        rec = {
                            "ready_s": st.ready_s,
                            "peak_at_ready_mib": ready.peak_kib / MIB,
                            "peak_mib": settled.peak_kib / MIB,
                            "rss_mib": settled.rss_total_kib / MIB,
                        }
                        self.finish(st, run_dir)
                        samples[name].append(rec)
                        log(f"memory {ds.label} {layers} {mode} {name}: peak {rec['peak_mib']:.0f} MiB")
                for name, recs in samples.items():
                    row = {
                        "cells": ds.label,
                        "input": layers,
                        "mode": mode,
                        "contender": name,
                        "n": len(recs),
                        "peak_mib": med(r["peak_mib"] for r in recs),
                        "peak_at_ready_mib": med(r["peak_at_ready_mib"] for r in recs),
                        "rss_mib": med(r["rss_mib"] for r in recs),
                        "ready_s": med(r["ready_s"] for r in recs),
                        "raw": recs,
                    }
                    if name != "plain" and "plain" in samples:
                        row["x_plain"] = paired(
                            [r["peak_mib"] for r in recs], [r["peak_mib"] for r in samples["plain"]]
                        )
                    rows.append(row)
        return rows

    # ------------------------------------------------------------------ 3. serving

    def bench_serve(self, datasets: list[Dataset]) -> list[dict]:
        rows = []
        for ds in datasets:
            if ds.label not in self.args.serve_sizes and not self.args.quick:
                continue
            makers = [("plain", lambda d, v=ds: plain_launch(v, d))]
            for rt, root in self.args.runtimes.items():
                makers.append((rt, lambda d, v=ds, n=rt, r=root: runtime_launch(v, d, None, (), n, r)))
            started: dict[str, tuple[procs.Started, Path]] = {}
            try:
                for name, make in makers:
                    run_dir = self.run_dir(f"serve-{ds.label}-{name}")
                    st = self.launch(make(run_dir), run_dir, ds.genes[0], ds.n_cells)
                    procs.wait_rss_settled(st)
                    started[name] = (st, run_dir)
                genes = random.Random(11).sample(ds.genes, min(500, len(ds.genes)))
                per: dict[tuple[str, int], list[dict]] = {}
                for rep in range(self.args.serve_reps):
                    for clients in self.args.clients:
                        for name, _ in rotate(makers, rep + clients):
                            st = started[name][0]
                            # Warm-up at the same load: connection set-up, first-touch page faults.
                            run_load(st.port, st.pid, st.var_column, genes, "umap", clients, self.args.warm_s, rep)
                            res = run_load(
                                st.port,
                                st.pid,
                                st.var_column,
                                genes,
                                "umap",
                                clients,
                                self.args.duration,
                                rep + 1,
                            )
                            per.setdefault((name, clients), []).append(res.as_dict())
                            log(
                                f"serve {ds.label} c={clients} {name}: {res.rps:.0f} req/s "
                                f"p50 {res.p50_ms:.1f} p99 {res.p99_ms:.1f} ms, err {res.errors}, "
                                f"server {res.server_cpu_ms_per_req:.1f} ms CPU/req, "
                                f"client {res.client_cpu_pct:.0f}%"
                            )
                peaks = {name: procs.sample_tree(st.pid).peak_kib / MIB for name, (st, _) in started.items()}
            finally:
                for st, run_dir in started.values():
                    self.finish(st, run_dir)
            for clients in self.args.clients:
                for name, _ in makers:
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

    # ------------------------------------------------------------------ 4. label save

    def bench_save(self, datasets: list[Dataset]) -> list[dict]:
        from galaxy_cellxgene_testkit.ui_client import UiClient  # cellxgene's encoder: only this part needs it

        ds = max(datasets, key=lambda d: d.n_cells)
        rows = []
        makers = [
            (
                "plain",
                lambda d, v=ds: plain_launch(
                    v,
                    d,
                    [
                        "--annotations-file",
                        str(d / "annotations.csv"),
                        "--gene-sets-file",
                        str(d / "gene_sets.csv"),
                    ],
                ),
            )
        ]
        for rt, root in self.args.runtimes.items():
            makers.append((rt, lambda d, v=ds, n=rt, r=root: runtime_launch(v, d, None, (), n, r)))
        rng = random.Random(5)
        labels = {
            "bench_clusters": [f"cluster_{rng.randrange(12)}" for _ in range(ds.n_cells)],
            "bench_selection": ["selected" if rng.random() < 0.2 else "unassigned" for _ in range(ds.n_cells)],
        }
        started: dict[str, tuple[procs.Started, Path]] = {}
        times: dict[str, list[float]] = {m[0]: [] for m in makers}
        out_rows: dict[str, int] = {}
        try:
            for name, make in makers:
                run_dir = self.run_dir(f"save-{ds.label}-{name}")
                st = self.launch(make(run_dir), run_dir, ds.genes[0], ds.n_cells)
                started[name] = (st, run_dir)
            for rep in range(self.args.n):
                for name, _ in rotate(makers, rep):
                    st, run_dir = started[name]
                    client = UiClient(f"http://127.0.0.1:{st.port}/")
                    t0 = time.perf_counter()
                    resp = client.put_labels(labels)
                    elapsed = time.perf_counter() - t0
                    if resp.status_code != 200:
                        raise procs.BenchError(f"{name}: label save {resp.status_code}: {resp.text[:300]}")
                    times[name].append(elapsed)
                    log(f"save {ds.label} {name}: {elapsed:.3f} s")
            for name, (_st, run_dir) in started.items():
                out = run_dir / "annotations.csv"
                # The saved file must hold every cell: a save that skipped the write would look fast.
                out_rows[name] = sum(1 for line in out.open() if not line.startswith("#")) - 1 if out.exists() else -1
        finally:
            for st, run_dir in started.values():
                self.finish(st, run_dir)
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


# --------------------------------------------------------------------------- report


def atlas_launches(ds: atlas.AtlasData, run_dir: Path, limit_gib: float, cache: Path) -> list[tuple[str, procs.Launch]]:
    """plain; the runtime with the column copy in memory, on disk, and on disk from the shared store
    cache (store_cache.py, built once before the runs): same data-segment ceiling."""
    cap = ["prlimit", f"--data={int(limit_gib * 2**30)}"]
    plain = procs.Launch("plain", [*cap, CELLXGENE, "--no-upgrade-check", "launch", str(ds.path), "--port", "{port}"])
    out = [("plain", plain)]
    variants = {
        "runtime-memory": (["--x-store", "memory"], {}),
        "runtime-disk": (["--x-store", "disk"], {}),
        "runtime-disk-cached": (
            ["--x-store", "disk", "--dataset-uuid", atlas.CACHE_UUID],
            {store_cache.CACHE_ENV: str(cache)},
        ),
    }
    for name, (extra, env) in variants.items():
        base = runtime_launch(Dataset(ds.path, ds.n_cells, ds.genes, []), run_dir, None, extra, name)
        out.append((name, procs.Launch(name, [*cap, *base.server], env={**base.env, **env})))
    return out


def bench_atlas(bench: Bench) -> list[dict]:
    args = bench.args
    rows = []
    for size in (int(s) for s in args.atlas_sizes.split(",") if s):
        path = args.data / atlas_name(size)
        if not path.exists():
            log(f"{path} missing: run scripts/data/make_bench_data.py --sizes '' --atlas {size}")
            continue
        ds = atlas.AtlasData.load(path, path.stem.removeprefix("atlas_"))
        samples: dict[str, list[dict]] = {}
        cache = bench.run_dir(f"atlas-{ds.label}-store-cache")
        store = atlas.fill_store_cache(ds, cache, log)
        for rep in range(args.atlas_reps):
            makers = atlas_launches(ds, args.data, args.data_limit_gib, cache)
            for name, _ in rotate(makers, rep):
                run_dir = bench.run_dir(f"atlas-{ds.label}-{name}")
                launch = dict(atlas_launches(ds, run_dir, args.data_limit_gib, cache))[name]
                rec = atlas.run_one(ds, name, launch, run_dir, args.atlas_clicks, 17 + rep, args.atlas_wait, log)
                if not args.keep_runs:
                    shutil.rmtree(run_dir, ignore_errors=True)
                samples.setdefault(name, []).append(rec)
            samples.setdefault("floor", []).append(atlas.floor_record(ds, store, args.atlas_clicks, 17 + rep, log))
        if not args.keep_runs:
            shutil.rmtree(cache, ignore_errors=True)
        rows += [atlas.summarize(ds.label, name, recs) for name, recs in samples.items()]
    atlas.add_ratios(rows)
    return rows


def render_atlas(rows: list[dict], meta: dict) -> str:
    def cell(r: dict, key: str, spec: str) -> str:
        return fmt(r.get(key), spec) if r.get("opened") else "–"

    table_rows = []
    for r in rows:
        opened = "yes" if r.get("opened") else f"no ({atlas.failure_reason(r)[:70]})"
        table_rows.append(
            [
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
        )
    head = (
        f"Measured {meta['date']} on {meta['machine']}; load average {meta['load_before']} before, "
        f"{meta['load_after']} after. Command: `{meta['command']}` ({meta['elapsed_min']:.1f} min); "
        f"every contender under `prlimit --data={meta['limit_gib']:g}GiB`; "
        f"{meta['clicks']} gene clicks per run (random genes and the most detected one), medians of "
        f"{meta['reps']} run(s).\n\n"
    )
    return (
        head
        + table(
            [
                "cells",
                "contender",
                "opened",
                "cells shown s",
                "vs floor",
                "first gene s",
                "vs plain",
                "click median ms",
                "click worst ms",
                "median / worst vs floor",
                "click vs plain",
                "peak MiB",
                "peak vs plain",
                "store build s",
                "store disk MiB",
            ],
            table_rows,
        )
        + "\n"
    )


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


def render(results: dict, meta: dict) -> str:
    parts = []
    parts.append(
        f"Measured {meta['date']} on {meta['machine']}; load average {meta['load_before']} before, "
        f"{meta['load_after']} after (the machine is shared: read the paired ratios, "
        "not absolute seconds).\n\n"
        f"Command: `{meta['command']}` ({meta['elapsed_min']:.1f} min); N={meta['n']} (medians; ratios are "
        f"medians of per-repetition ratios, contenders alternating)."
    )
    if results.get("ready"):
        rows = [
            [
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
                ratio(vs(results["ready"], r, "plain", "cpu_s", ("cells", "case"))),
                ratio(vs(results["ready"], r, "runtime", "ready_s", ("cells", "case"))),
            ]
            for r in results["ready"]
        ]
        parts.append(
            "### 1. Time to ready (start -> /health -> schema -> first gene served)\n\n"
            + table(
                [
                    "cells",
                    "case",
                    "contender",
                    "ready s (min–max)",
                    "vs plain",
                    "vs 1.1.1 recipe",
                    "prep s",
                    "prep peak MiB",
                    "server peak MiB at ready",
                    "CPU s",
                    "CPU vs plain",
                    "vs runtime",
                ],
                rows,
            )
        )
    if results.get("memory"):
        rows = [
            [
                r["cells"],
                r["input"],
                r["mode"],
                r["contender"],
                fmt(r["peak_mib"], ".0f"),
                ratio(r.get("x_plain")),
                fmt(r["peak_at_ready_mib"], ".0f"),
                fmt(r["rss_mib"], ".0f"),
                fmt(r["ready_s"]),
                ratio(vs(results["memory"], r, "runtime", "peak_mib", ("cells", "input", "mode"))),
            ]
            for r in results["memory"]
        ]
        parts.append(
            "### 2. Server memory (peak RSS after ready + 20 genes + a layout, RSS settled)\n\n"
            + table(
                [
                    "cells",
                    "input",
                    "mode",
                    "contender",
                    "peak MiB",
                    "vs plain",
                    "peak at ready",
                    "RSS after",
                    "ready s",
                    "vs runtime",
                ],
                rows,
            )
        )
    if results.get("serve"):
        rows = [
            [
                r["cells"],
                str(r["clients"]),
                r["contender"],
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
                ratio(vs(results["serve"], r, "runtime", "rps", ("cells", "clients"))),
            ]
            for r in results["serve"]
        ]
        parts.append(
            "### 3. Serving (closed-loop clients, random genes, 1 in 10 layout requests)\n\n"
            + table(
                [
                    "cells",
                    "clients",
                    "contender",
                    "req/s",
                    "req/s vs plain",
                    "p50 ms",
                    "p99 ms",
                    "p99 vs plain",
                    "gene p50 ms",
                    "server CPU ms/req",
                    "client CPU %",
                    "errors",
                    "server peak MiB",
                    "req/s vs runtime",
                ],
                rows,
            )
        )
    if results.get("save"):
        rows = [
            [
                r["cells"],
                r["contender"],
                f"{fmt(r['save_s'], '.3f')} ({fmt(r['save_min'], '.3f')}–{fmt(r['save_max'], '.3f')})",
                ratio(r.get("x_plain")),
                ratio(vs(results["save"], r, "runtime", "", ("cells",))),
                str(r["rows_written"]),
            ]
            for r in results["save"]
        ]
        parts.append(
            "### 4. One label save (2 categories, PUT until answered, output file written)\n\n"
            + table(["cells", "contender", "save s (min–max)", "vs plain", "vs runtime", "rows in output"], rows)
        )
    return "\n\n".join(parts) + "\n"


def machine_info() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    from importlib.metadata import version

    return (
        f"{os.cpu_count()} cores ({model}), {mem_kib / 2**20:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}, cellxgene {version('cellxgene')}, anndata {version('anndata')}"
    )


def write_docs(report: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the block between `begin` and `end` in docs/benchmarks.md (appended if missing)."""
    block = f"{begin}\n{report}{end}"
    if DOCS.exists():
        text = DOCS.read_text()
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            _, tail = rest.split(end, 1)
            DOCS.write_text(head + block + tail)
            return
        DOCS.write_text(text.rstrip() + "\n\n## Results\n\n" + block + "\n")
        return
    DOCS.write_text("# Benchmarks\n\n## Results\n\n" + block + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO / "bench-data", help="where make_bench_data.py wrote")
    p.add_argument("--sizes", default="demo,10000,100000,500000", help="cell counts of bench-data/, and demo")
    p.add_argument("--only", default="ready,memory,serve,save", help="sections to run")
    p.add_argument("--cases", default="plain,unique,layer", help="time-to-ready cases")
    p.add_argument("--contenders", default="plain,recipe-1.1.1,runtime")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also measure `python -m galaxy_cellxgene` from DIR (a patched copy of tools/cellxgene)",
    )
    p.add_argument("-n", type=int, default=5, help="repetitions (medians of N)")
    p.add_argument("--mem-reps", type=int, default=3)
    p.add_argument(
        "--mem-variants",
        default="layers-memory,nolayers-memory,layers-backed,nolayers-backed",
        help="input-mode pairs for the memory section",
    )
    p.add_argument("--serve-sizes", default="100k", help="dataset labels to run the serving benchmark on")
    p.add_argument("--serve-reps", type=int, default=1)
    p.add_argument("--clients", default="1,4,16")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per serving cell")
    p.add_argument("--warm-s", type=float, default=1.0, help="untimed seconds of the same load before each cell")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the discarded first round")
    p.add_argument("--quick", action="store_true", help="smoke test: demo and 10k cells, N=1, short serving cells")
    p.add_argument("--keep-runs", action="store_true", help="keep bench-data/runs/* (logs, outputs)")
    p.add_argument("--write-docs", action="store_true", help="replace the results block of docs/benchmarks.md")
    p.add_argument("--json", type=Path, help="also write raw results here (default bench-data/results-*.json)")
    p.add_argument("--from-json", type=Path, help="only render (and --write-docs) a saved results file")
    p.add_argument("--atlas-sizes", default="100000,1000000", help="atlas section: cell counts of atlas_*.h5ad")
    p.add_argument("--atlas-reps", type=int, default=1, help="atlas section: runs per contender")
    p.add_argument("--atlas-clicks", type=int, default=40, help="atlas section: gene clicks per run")
    p.add_argument("--atlas-wait", type=float, default=900.0, help="atlas section: seconds allowed to open")
    p.add_argument("--data-limit-gib", type=float, default=10.0, help="atlas section: prlimit --data per server")
    args = p.parse_args(argv)

    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        atlas_rows = saved["results"].pop("atlas", None)
        report = render(saved["results"], saved["meta"]) if saved["results"] else ""
        atlas_report = render_atlas(atlas_rows, saved["meta"]) if atlas_rows is not None else ""
        print(report + atlas_report)
        if args.write_docs:
            if report:
                write_docs(report)
            if atlas_report:
                write_docs(atlas_report, ATLAS_BEGIN, ATLAS_END)
        return 0

    if args.quick:
        args.sizes, args.n, args.mem_reps, args.warmup = "demo,10000", 1, 1, False
        args.duration, args.warm_s, args.clients = 2.0, 0.5, "1,16"
    args.cases = [c for c in args.cases.split(",") if c]
    args.contenders = [c for c in args.contenders.split(",") if c]
    args.clients = [int(c) for c in str(args.clients).split(",") if c]
    args.serve_sizes = [s for s in args.serve_sizes.split(",") if s]
    args.runtimes = {}
    if "runtime" in args.contenders:
        if runtime_available():
            args.runtimes["runtime"] = REPO / "tools" / "cellxgene"
        else:
            log("runtime (tools/cellxgene/galaxy_cellxgene/cli.py) not there yet: measuring the others only")
    for spec in args.variant:
        name, _, root = spec.partition("=")
        args.runtimes[name] = Path(root).resolve()

    datasets = []
    sections = [s for s in args.only.split(",") if s]
    if sections == ["atlas"]:
        args.sizes = ""  # the atlas section reads its own datasets
    for size in (s for s in args.sizes.split(",") if s):
        if size == "demo":
            datasets.append(load_dataset(DEMO, "demo"))
            continue
        path = args.data / dataset_name(int(size))
        if not path.exists():
            log(f"{path} missing: run scripts/data/make_bench_data.py --sizes {size}")
            return 2
        datasets.append(load_dataset(path))

    bench = Bench(args, args.data)
    atexit.register(procs.stop_all)
    # SIGTERM (a killed run) unwinds like Ctrl-C, so the servers started so far are stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    t0 = time.perf_counter()
    out_json = args.json or args.data / f"results-{time.strftime('%Y%m%dT%H%M%S')}.json"
    for section in sections:
        if section == "atlas":
            bench.results[section] = bench_atlas(bench)
        else:
            bench.results[section] = getattr(bench, f"bench_{section}")(datasets)
        # Written after every section: a run stopped late still leaves what it measured.
        out_json.write_text(json.dumps({"meta": {"partial": True}, "results": bench.results}, indent=1, default=str))
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "load_before": load_before,
        "load_after": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "command": "scripts/benchmark.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "elapsed_min": (time.perf_counter() - t0) / 60,
        "n": args.n,
        "limit_gib": args.data_limit_gib,
        "clicks": args.atlas_clicks,
        "reps": args.atlas_reps,
    }
    atlas_rows = bench.results.pop("atlas", None)
    report = render(bench.results, meta) if bench.results else ""
    if atlas_rows is not None:
        bench.results["atlas"] = atlas_rows
    atlas_report = render_atlas(atlas_rows, meta) if atlas_rows is not None else ""
    print(report + atlas_report)
    out_json.write_text(json.dumps({"meta": meta, "results": bench.results}, indent=1, default=str))
    log(f"raw results: {out_json}")
    if args.write_docs:
        if report:
            write_docs(report)
        if atlas_report:
            write_docs(atlas_report, ATLAS_BEGIN, ATLAS_END)
        log(f"updated {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
