#!/usr/bin/env python
"""Hosted-load test (issue 7): N concurrent clients against one real runtime, then the idle timeout.

Starts `python -m galaxy_cellxgene view` on DATASET in a throw-away Galaxy-like job dir, runs
N closed-loop clients for D seconds that mix what the cellxgene page does (expression of a gene,
layouts, label autosaves of every cell, differential expression), samples the server's memory,
then stops sending and waits for the idle timeout to end the session by itself (exit 0).

A request fails if it raises or answers anything but 200; the one documented exception is the
differential-expression gate's 503 (another computation is running), counted separately.
Prints a JSON summary (also written with --json) and exits 1 if any check failed.

    .venv/bin/python scripts/bench/loadtest.py --dataset bench-data/synth_100k.h5ad --clients 32 --duration 60
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import requests
from galaxy_cellxgene_testkit.jobs import Job, launch, new_job_dir, runtime_env, wait_ready

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_SRC = ROOT / "tools" / "cellxgene"
API = "api/v0.2/"
BINARY = {"Accept": "application/octet-stream"}

# Per client: a label autosave every SAVE_EVERY s (the UI autosaves at most every 2.5 s while a
# user edits), a differential expression at most every DIFFEXP_EVERY s; otherwise one in
# LAYOUT_EVERY requests is a layout and the rest are genes, as when a user browses expression.
SAVE_EVERY = 30.0
DIFFEXP_EVERY = 30.0
LAYOUT_EVERY = 8
DIFFEXP_CELLS = 2_000


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    diffexp_busy: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies.setdefault(kind, []).append(seconds)

    def fail(self, kind: str, what: str) -> None:
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            if len(self.error_samples) < 20:
                self.error_samples.append(f"{kind}: {what}")


def rss_kib(pid: int, field_name: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def start_runtime(dataset: Path, parent: Path, idle_minutes: float, extra: list[str]) -> Job:
    """The runtime as a Galaxy job runs it, ready once it registered and answers /health."""
    job_dir = new_job_dir(parent)
    args = [
        "view", str(dataset.resolve()),
        "--annotations-out", str(job_dir / "outputs" / "annotations.csv"),
        "--gene-sets-out", str(job_dir / "outputs" / "gene_sets.csv"),
        "--register", "always", "--idle-timeout", str(idle_minutes), *extra,
    ]  # fmt: skip
    job = launch(job_dir, args, runtime_env({"PYTHONUNBUFFERED": "1"}, tool_dir=RUNTIME_SRC))
    try:
        wait_ready(job, timeout=300)
    except AssertionError as err:
        raise SystemExit(f"the runtime did not become ready: {err}") from None
    return job


def label_bodies(n_obs: int, client: int, variants: int = 2) -> list[bytes]:
    """Pre-encoded autosaves (the UI sends every category each time); encoding is client CPU."""
    from server.common.fbs.matrix import encode_matrix_fbs

    rng = np.random.default_rng(client)
    names = np.array([f"type_{i}" for i in range(8)], dtype=object)
    bodies = []
    for v in range(variants):
        frame = pd.DataFrame(
            {
                f"load_{client}_cells": names[rng.integers(0, len(names), n_obs)],
                f"load_{client}_review": np.where(rng.random(n_obs) < 0.1, f"checked_{v}", "unassigned"),
            }
        )
        bodies.append(zlib.compress(bytes(encode_matrix_fbs(frame, col_idx=frame.columns))))
    return bodies


@dataclass
class ClientPlan:
    """What one client sends next: a due autosave, then a due differential expression, else browsing."""

    i: int
    n_obs: int
    genes: list[str]
    var_index: str
    layouts: list[str]
    bodies: list[bytes]
    rng: random.Random
    next_save: float = 0.0
    next_diffexp: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        # Spread the periodic work, but let client 0 save and client 1 diffexp at once, so even a
        # short run on a saturated machine covers every kind of request.
        self.next_save = time.monotonic() + (0 if self.i == 0 else self.rng.uniform(0, SAVE_EVERY))
        self.next_diffexp = time.monotonic() + (0 if self.i == 1 else self.rng.uniform(0, DIFFEXP_EVERY))

    def pick(self, now: float) -> tuple[str, str, str, dict]:
        """(kind, method, API path, requests keyword arguments) of the next request."""
        rng, kwargs = self.rng, {"timeout": 120}
        if now >= self.next_save:
            self.next_save = now + SAVE_EVERY
            body = {"data": rng.choice(self.bodies), "headers": {"Content-Type": "application/octet-stream"}}
            request = ("labels", "PUT", "annotations/obs", kwargs | body)
        elif now >= self.next_diffexp:
            self.next_diffexp = now + DIFFEXP_EVERY
            request = ("diffexp", "POST", "diffexp/obs", kwargs | {"json": self.diffexp_body()})
        elif (self.n + self.i) % LAYOUT_EVERY == LAYOUT_EVERY - 1:
            params = {"layout-name": rng.choice(self.layouts)}
            request = ("layout", "GET", "layout/obs", kwargs | {"params": params, "headers": BINARY})
        else:
            params = {f"var:{self.var_index}": rng.choice(self.genes)}
            request = ("expression", "GET", "data/var", kwargs | {"params": params, "headers": BINARY})
        self.n += 1
        return request

    def diffexp_body(self) -> dict:
        cells = self.rng.sample(range(self.n_obs), 2 * DIFFEXP_CELLS)
        sets = sorted(cells[:DIFFEXP_CELLS]), sorted(cells[DIFFEXP_CELLS:])
        return {
            "mode": "topN",
            "count": 15,
            "set1": {"filter": {"obs": {"index": sets[0]}}},
            "set2": {"filter": {"obs": {"index": sets[1]}}},
        }


def run_client(url: str, plan: ClientPlan, deadline: list[float], tally: Tally, start: threading.Barrier) -> None:
    http = requests.Session()
    start.wait()  # the main thread set deadline[0] before it reached the barrier
    stop_at = deadline[0]
    while time.monotonic() < stop_at:
        kind, method, path, kwargs = plan.pick(time.monotonic())
        t = time.perf_counter()
        try:
            response = http.request(method, url + API + path, **kwargs)
        except requests.RequestException as err:
            tally.fail(kind, type(err).__name__)
            continue
        dt = time.perf_counter() - t
        if response.status_code == 200 and response.content:
            tally.ok(kind, dt)
        elif kind == "diffexp" and response.status_code == 503:
            with tally.lock:
                tally.diffexp_busy += 1
        else:
            tally.fail(kind, f"HTTP {response.status_code} {response.text[:120]!r}")
    http.close()


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT / "bench-data" / "synth_100k.h5ad")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--idle-timeout", type=float, default=0.05, help="minutes (the runtime's flag)")
    parser.add_argument("--max-rss-growth-mib", type=float, default=1024.0,
                        help="fail if peak RSS exceeds the RSS at ready by more than this")  # fmt: skip
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "loadtest")
    parser.add_argument("--keep", action="store_true", help="keep the job dir (runtime.log, outputs)")
    parser.add_argument("runtime_args", nargs="*", help="extra runtime flags after --, e.g. -- --diffexp-concurrency 2")
    return parser.parse_args(argv)


@dataclass
class Served:
    """What the load needs from the running viewer: its cells, genes and layouts."""

    n_obs: int
    var_index: str
    layouts: list[str]
    genes: list[str]


def read_schema(url: str, n_obs: int) -> Served:
    from server.common.fbs.matrix import decode_matrix_fbs

    schema = requests.get(url + API + "schema", timeout=60).json()["schema"]
    assert int(schema["dataframe"]["nObs"]) == n_obs
    var_index = schema["annotations"]["var"]["index"]
    layouts = [layout["name"] for layout in schema["layout"]["obs"]]
    response = requests.get(url + API + "annotations/var", params={"annotation-name": var_index},
                            headers=BINARY, timeout=60)  # fmt: skip
    genes = [str(g) for g in decode_matrix_fbs(response.content)[var_index]]
    return Served(n_obs, var_index, layouts, genes)


def apply_load(job: Job, served: Served, bodies: list[list[bytes]], args: argparse.Namespace, rss_ready: int) -> dict:
    """ARGS.clients clients for ARGS.duration seconds; the summary of what they saw and the memory it took."""
    tally, barrier, deadline = Tally(), threading.Barrier(args.clients + 1), [0.0]
    plans = [
        ClientPlan(i, served.n_obs, served.genes, served.var_index, served.layouts, bodies[i],
                   random.Random(args.seed * 7919 + i))
        for i in range(args.clients)
    ]  # fmt: skip
    threads = [
        threading.Thread(target=run_client, args=(job.url, plan, deadline, tally, barrier), daemon=True)
        for plan in plans
    ]
    for thread in threads:
        thread.start()
    samples: list[int] = []
    deadline[0] = time.monotonic() + args.duration
    barrier.wait()
    load_start = time.monotonic()
    while any(t.is_alive() for t in threads):
        samples.append(rss_kib(job.proc.pid))
        time.sleep(0.25)
    load_end = time.monotonic()
    alive_after_load = job.proc.poll() is None
    try:
        status = requests.get(job.url + "galaxy/status", timeout=30).json()  # a quiet path: no activity
    except requests.RequestException:
        status = {"label_saves": -1}
    peak = rss_kib(job.proc.pid, "VmHWM")
    return {
        "alive_after_load": alive_after_load,
        "load_seconds": round(load_end - load_start, 2),
        **tally_summary(tally, load_end - load_start),
        "label_saves_server": status["label_saves"],
        "rss_ready_mib": round(rss_ready / 1024, 1),
        "rss_peak_mib": round(peak / 1024, 1),
        "rss_max_sampled_mib": round(max(samples, default=0) / 1024, 1),
        "rss_after_load_mib": round(rss_kib(job.proc.pid) / 1024, 1),
        "load_end": load_end,
    }


def tally_summary(tally: Tally, seconds: float) -> dict:
    all_lat = [x for xs in tally.latencies.values() for x in xs]
    by_kind = {
        kind: {
            "served": len(v),
            "errors": tally.errors.get(kind, 0),
            "p50_ms": percentile(v, 50),
            "p99_ms": percentile(v, 99),
        }
        for kind, v in sorted(tally.latencies.items())
    }
    return {
        "requests_served": len(all_lat),
        "requests_per_s": round(len(all_lat) / seconds, 1),
        "errors": sum(tally.errors.values()),
        "error_samples": tally.error_samples,
        "diffexp_503": tally.diffexp_busy,
        "p50_ms": percentile(all_lat, 50),
        "p99_ms": percentile(all_lat, 99),
        "by_kind": by_kind,
        "label_saves_acknowledged": len(tally.latencies.get("labels", [])),
    }


def idle_exit(job: Job, idle_minutes: float, load_end: float) -> dict:
    """The idle timeout must still end the session by itself after the load."""
    from galaxy_cellxgene.labels import read_labels

    try:
        rc = job.proc.wait(timeout=idle_minutes * 60 + 60)
    except subprocess.TimeoutExpired:
        rc = None
    log_text = (job.job_dir / "runtime.log").read_text(errors="replace")
    return {
        "idle_exit_code": rc,
        "idle_exit_after_s": round(time.monotonic() - load_end, 2) if rc is not None else None,
        "idle_logged": "no activity" in log_text,
        "output_rows": len(read_labels(job.job_dir / "outputs" / "annotations.csv")),
    }


def checks_of(summary: dict, max_rss_growth_mib: float) -> dict[str, bool]:
    return {
        # The idle clock must not end a session that is busy answering (slow requests, full queue).
        "server up for the whole load": summary["alive_after_load"],
        "no failed request": summary["errors"] == 0,
        "every request kind served": all(
            summary["by_kind"].get(k, {}).get("served", 0) > 0 for k in ("expression", "layout", "labels", "diffexp")
        ),
        "memory bounded": summary["rss_peak_mib"] - summary["rss_ready_mib"] <= max_rss_growth_mib,
        "server counted every acknowledged save": summary["label_saves_server"] >= summary["label_saves_acknowledged"],
        "idle timeout fired (exit 0)": summary["idle_exit_code"] == 0 and summary["idle_logged"],
        "output is one complete save": summary["output_rows"] == summary["n_obs"],
    }


def run(args: argparse.Namespace, work: Path) -> dict:
    """Start the runtime, load it, let it time out; the summary (the runtime is killed if it outlives this)."""
    import h5py

    with h5py.File(args.dataset, "r") as f:
        n_obs = int(f["obs"][f["obs"].attrs["_index"]].shape[0])
    # Encode the autosave bodies before the server starts: its idle clock must only see the load.
    bodies = [label_bodies(n_obs, i) for i in range(args.clients)]
    started = time.monotonic()
    job = start_runtime(args.dataset, work, args.idle_timeout, args.runtime_args)
    summary: dict = {"dataset": str(args.dataset), "clients": args.clients, "duration_s": args.duration}
    try:
        summary["start_s"] = round(time.monotonic() - started, 2)
        served = read_schema(job.url, n_obs)
        summary |= {"n_obs": n_obs, "n_vars": len(served.genes), "layouts": served.layouts}
        load = apply_load(job, served, bodies, args, rss_kib(job.proc.pid))
        load_end = load.pop("load_end")
        summary |= load
        summary |= idle_exit(job, args.idle_timeout, load_end)
    finally:
        if job.proc.poll() is None:
            job.send(signal.SIGKILL)
            job.proc.wait(10)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="loadtest-", dir=args.work))
    summary = run(args, work)
    checks = checks_of(summary, args.max_rss_growth_mib)
    # Context for the figures: other work on the machine shares its cores with both sides.
    summary["machine"] = {"cpus": os.cpu_count(), "loadavg_1m_at_end": round(os.getloadavg()[0], 2)}
    summary["checks"] = checks
    summary["passed"] = all(checks.values())
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
