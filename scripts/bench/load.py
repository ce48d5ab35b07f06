"""Concurrent clients fetching genes the way the page does: closed loop, fixed duration."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.procs import BINARY_HEADERS, Http, expression_path, layout_path, sample_tree

LAYOUT_EVERY = 10  # one request in ten is a layout (re-colouring / switching embeddings)


@dataclass
class LoadResult:
    clients: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    expr_p50_ms: float
    server_cpu_ms_per_req: float
    client_cpu_pct: float  # the load generator's own CPU, % of one core: it shares the 2 cores

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def run_load(
    port: int,
    server_pid: int,
    var_column: str,
    genes: Sequence[str],
    layout: str,
    clients: int,
    duration_s: float,
    seed: int,
) -> LoadResult:
    stop_at = 0.0
    barrier = threading.Barrier(clients + 1)
    lat: list[list[float]] = [[] for _ in range(clients)]
    expr_lat: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients

    def worker(i: int) -> None:
        rng = random.Random(seed * 1009 + i)
        http = Http(port)
        n = 0
        barrier.wait()
        while time.perf_counter() < stop_at:
            is_layout = n % LAYOUT_EVERY == LAYOUT_EVERY - 1
            path = layout_path(layout) if is_layout else expression_path(var_column, rng.choice(genes))
            t = time.perf_counter()
            try:
                status, _, body = http.get(path, BINARY_HEADERS)
                ok = status == 200 and len(body) > 0
            except OSError:
                ok = False
            dt = time.perf_counter() - t
            n += 1
            if ok:
                lat[i].append(dt)
                if not is_layout:
                    expr_lat[i].append(dt)
            else:
                errors[i] += 1
        http.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    cpu0 = sample_tree(server_pid).cpu_total_s
    client_cpu0 = time.process_time()
    t0 = time.perf_counter()
    stop_at = t0 + duration_s
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    client_cpu = time.process_time() - client_cpu0
    cpu = sample_tree(server_pid).cpu_total_s - cpu0

    all_lat = np.array([x for xs in lat for x in xs]) * 1000
    all_expr = np.array([x for xs in expr_lat for x in xs]) * 1000
    done = len(all_lat)
    return LoadResult(
        clients=clients,
        seconds=elapsed,
        requests=done,
        errors=sum(errors),
        rps=done / elapsed,
        p50_ms=float(np.percentile(all_lat, 50)) if done else float("nan"),
        p99_ms=float(np.percentile(all_lat, 99)) if done else float("nan"),
        expr_p50_ms=float(np.percentile(all_expr, 50)) if len(all_expr) else float("nan"),
        server_cpu_ms_per_req=cpu * 1000 / done if done else float("nan"),
        client_cpu_pct=100 * client_cpu / elapsed,
    )
