"""Concurrent clients fetching genes the way the page does: closed loop, fixed duration."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

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


@dataclass
class Client:
    """One closed-loop client: which genes it asks for, and what it saw."""

    i: int
    port: int
    var_column: str
    genes: Sequence[str]
    layout: str
    seed: int
    lat: list[float] = field(default_factory=list)
    expr_lat: list[float] = field(default_factory=list)
    errors: int = 0

    def run(self, barrier: threading.Barrier, stop_at: list[float]) -> None:
        rng = random.Random(self.seed * 1009 + self.i)
        http = Http(self.port)
        n = 0
        barrier.wait()  # stop_at[0] is set before the main thread reaches the barrier
        while time.perf_counter() < stop_at[0]:
            is_layout = n % LAYOUT_EVERY == LAYOUT_EVERY - 1
            path = layout_path(self.layout) if is_layout else expression_path(self.var_column, rng.choice(self.genes))
            t = time.perf_counter()
            try:
                status, _, body = http.get(path, BINARY_HEADERS)
                ok = status == 200 and len(body) > 0
            except OSError:
                ok = False
            dt = time.perf_counter() - t
            n += 1
            if ok:
                self.lat.append(dt)
                if not is_layout:
                    self.expr_lat.append(dt)
            else:
                self.errors += 1
        http.close()


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
    stop_at = [0.0]
    barrier = threading.Barrier(clients + 1)
    workers = [Client(i, port, var_column, genes, layout, seed) for i in range(clients)]
    threads = [threading.Thread(target=w.run, args=(barrier, stop_at), daemon=True) for w in workers]
    for t in threads:
        t.start()
    cpu0 = sample_tree(server_pid).cpu_total_s
    client_cpu0 = time.process_time()
    t0 = time.perf_counter()
    stop_at[0] = t0 + duration_s
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    client_cpu = time.process_time() - client_cpu0
    cpu = sample_tree(server_pid).cpu_total_s - cpu0
    return result(workers, clients, elapsed, cpu, client_cpu)


def result(workers: list[Client], clients: int, elapsed: float, cpu: float, client_cpu: float) -> LoadResult:
    all_lat = np.array([x for w in workers for x in w.lat]) * 1000
    all_expr = np.array([x for w in workers for x in w.expr_lat]) * 1000
    done = len(all_lat)
    return LoadResult(
        clients=clients,
        seconds=elapsed,
        requests=done,
        errors=sum(w.errors for w in workers),
        rps=done / elapsed,
        p50_ms=float(np.percentile(all_lat, 50)) if done else float("nan"),
        p99_ms=float(np.percentile(all_lat, 99)) if done else float("nan"),
        expr_p50_ms=float(np.percentile(all_expr, 50)) if len(all_expr) else float("nan"),
        server_cpu_ms_per_req=cpu * 1000 / done if done else float("nan"),
        client_cpu_pct=100 * client_cpu / elapsed,
    )
