"""Atlas-scale section (issue 17): plain cellxgene, the runtime with X's column copy in memory and
with it on disk, side by side on 20,000-gene datasets of 100k and 1M cells.

Per contender and repetition: time to the first gene (start -> /health -> schema -> one gene
served), then CLICKS gene requests one after another (random genes plus the most detected gene,
the worst case), each timed on the client as a browser would see it; peak RSS (VmHWM) of the
server after the clicks, once its RSS has settled; for the runtime, the one-off cost of its column
store (seconds, disk bytes) from /galaxy/status. Every contender runs under the same address-space
ceiling for its data segment (`prlimit --data`), so "plain fails to open within N GiB" is measured,
not guessed.
"""

from __future__ import annotations

import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from bench import procs

MIB = 1024.0


@dataclass
class AtlasData:
    path: Path
    label: str
    n_cells: int
    genes: list[str]
    densest: str  # the gene detected in the most cells: the largest answer
    # Each string var column, gene by gene: the runtime names genes by a symbol column when the
    # index holds gene IDs (gene_names.py), so a gene is asked for in the server's own column.
    names: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, label: str) -> AtlasData:
        with h5py.File(path, "r") as f:
            var = f["var"]
            index = var[var.attrs["_index"]][()].astype(str).tolist()
            n_cells = int(f["X"].attrs["shape"][0])
            rate = var["detection_rate"][()] if "detection_rate" in var else None
            names = {k: var[k][()].astype(str).tolist() for k in var if isinstance(var[k], h5py.Dataset)}
        densest = index[int(np.argmax(rate))] if rate is not None else index[0]
        names = {k: v for k, v in names.items() if len(v) == len(index) and v and isinstance(v[0], str)}
        return cls(path, label, n_cells, index, densest, names)

    def named(self, column: str, gene: str) -> str:
        """`gene` (an index name) as the server's var column `column` names it."""
        if column not in self.names:
            return gene
        if not hasattr(self, "_position"):
            self._position = {g: i for i, g in enumerate(self.genes)}
        return self.names[column][self._position[gene]]


CELLS_FLOOR = """
import sys, time
t0 = time.perf_counter()
import h5py
with h5py.File(sys.argv[1], "r") as f:
    obs = f["obs"]
    for name in obs:
        node = obs[name]
        for part in (node.values() if isinstance(node, h5py.Group) else [node]):
            part[()]
    f["obsm"][sys.argv[2]][()]
print(time.perf_counter() - t0)
"""


def cells_floor_s(ds: AtlasData, embedding: str = "X_umap") -> float:
    """The least any viewer must do before it draws the cells: start Python, read every obs column
    and the embedding with h5py (from the page cache, as the contenders do)."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CELLS_FLOOR, str(ds.path), embedding], check=True, capture_output=True, text=True
    )
    float(out.stdout)  # the script ran to its end
    return time.perf_counter() - t0


def click_floor_ms(store: Path, ds: AtlasData, genes: list[str]) -> list[float]:
    """Per gene, the least a click costs: read its column from the built store, lay it out dense
    (one float32 per cell, as the page receives it) and send those bytes over loopback."""
    from galaxy_cellxgene.column_file import ColumnFile

    index = {g: i for i, g in enumerate(ds.genes)}
    matrix = ColumnFile(store)
    a, b = socket.socketpair()
    times = []
    try:
        for gene in genes:
            t0 = time.perf_counter()
            column = matrix.select(None, np.array([index[gene]])).toarray().astype(np.float32, copy=False)
            payload = column.tobytes()
            sender = threading.Thread(target=a.sendall, args=(payload,))
            sender.start()
            got = 0
            while got < len(payload):
                got += len(b.recv(1 << 20))
            sender.join()
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        a.close()
        b.close()
        matrix.close()
    return times


CACHE_UUID = "0b5e7a1c-9d2f-4e6a-8c3b-1f4d7e9a2c60"  # stands in for the Galaxy dataset's UUID


def fill_store_cache(ds: AtlasData, cache: Path, log: Callable[[str], None]) -> Path:
    """Build the shared store once, as the first session of a dataset would (store_cache.py):
    the cached contender then measures every later session's open."""
    from galaxy_cellxgene import store_cache
    from galaxy_cellxgene.column_file import build_column_file

    t0 = time.perf_counter()
    entry = store_cache.StoreCache(cache, 1 << 50).obtain(
        store_cache.cache_key(CACHE_UUID),
        store_cache.fingerprint(ds.path),
        lambda target: build_column_file(ds.path, target).value_range,
    )
    log(f"atlas {ds.label}: store cache filled in {time.perf_counter() - t0:.1f} s")
    return entry


def click_genes(ds: AtlasData, clicks: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    genes = [*rng.sample(ds.genes, clicks - 1), ds.densest]
    rng.shuffle(genes)
    return genes


def floor_record(ds: AtlasData, store: Path, clicks: int, seed: int, log: Callable[[str], None]) -> dict:
    """The floors of one repetition, beside its contenders: cells shown, and each click's."""
    cells = cells_floor_s(ds)
    times = click_floor_ms(store, ds, click_genes(ds, clicks, seed))
    rec = {
        "opened": True,
        "cells_shown_s": cells,
        "first_gene_s": None,
        "click_median_ms": statistics.median(times),
        "click_worst_ms": max(times),
        "click_densest_ms": None,
        "peak_mib": None,
        "store": None,
    }
    log(
        f"atlas {ds.label} floor: cells {cells:.2f} s, click median {rec['click_median_ms']:.1f} ms worst "
        f"{rec['click_worst_ms']:.1f} ms"
    )
    return rec


def _click(client: procs.Http, column: str, gene: str, n_cells: int) -> float:
    t0 = time.perf_counter()
    status, headers, body = client.get(procs.expression_path(column, gene), procs.BINARY_HEADERS)
    elapsed = time.perf_counter() - t0
    if status != 200 or not body:
        raise procs.BenchError(f"gene {gene}: {status}")
    # Checked after the timing: a gene the server does not know is a 200 with an empty matrix,
    # which would otherwise be timed as a (very fast) click.
    if (rows := procs.n_rows_of(procs.decode_body(headers, body))) != n_cells:
        raise procs.BenchError(f"gene {gene}: answer has {rows} rows, want {n_cells}")
    return elapsed


def _status(port: int) -> dict:
    client = procs.Http(port)
    try:
        status, _, body = client.get("/galaxy/status", {"Accept": "application/json"})
    finally:
        client.close()
    return json.loads(body) if status == 200 else {}


def run_one(
    ds: AtlasData,
    name: str,
    launch: procs.Launch,
    run_dir: Path,
    clicks: int,
    seed: int,
    wait_s: float,
    log: Callable[[str], None],
) -> dict:
    st = procs.start(launch, procs.free_port(), run_dir, dict(os.environ))
    try:
        try:
            first = ds.genes[len(ds.genes) // 3]
            rows = procs.wait_ready(
                st, lambda column: ds.named(column, first), deadline_s=wait_s, request_timeout=wait_s, as_browser=True
            )
        except (procs.BenchError, OSError) as err:
            tail = st.log_tail(6)
            # The server's own last word (cellxgene: "Error: Out of memory - file is too large ...").
            said = [line.strip() for line in tail.splitlines() if line.strip()]
            error = said[-1] if said else str(err).splitlines()[0]
            log(f"atlas {ds.label} {name}: did not open: {error}")
            return {"opened": False, "error": error, "log_tail": tail, "seconds": time.perf_counter() - st.t_start}
        if rows != ds.n_cells:
            raise procs.BenchError(f"{name}: first gene has {rows} rows, want {ds.n_cells}")
        client = procs.Http(st.port, timeout=wait_s)
        genes = click_genes(ds, clicks, seed)
        times = [_click(client, st.var_column, g, ds.n_cells) for g in genes]
        densest_ms = times[genes.index(ds.densest)] * 1000
        client.close()
        settled = procs.wait_rss_settled(st)
        store = _status(st.port).get("x_store") if name != "plain" else None
        rec = {
            "opened": True,
            "cells_shown_s": st.cells_s,
            "first_gene_s": st.ready_s,
            "click_median_ms": statistics.median(times) * 1000,
            "click_worst_ms": max(times) * 1000,
            "click_densest_ms": densest_ms,
            "peak_mib": settled.peak_kib / MIB,
            "store": store,
        }
        log(
            f"atlas {ds.label} {name}: first gene {rec['first_gene_s']:.1f} s, click median "
            f"{rec['click_median_ms']:.1f} ms worst {rec['click_worst_ms']:.1f} ms, peak {rec['peak_mib']:.0f} MiB"
        )
        return rec
    finally:
        procs.stop(st)


def summarize(ds_label: str, name: str, recs: list[dict]) -> dict:
    ok = [r for r in recs if r["opened"]]
    row: dict = {"cells": ds_label, "contender": name, "n": len(recs), "opened": len(ok), "raw": recs}
    if not ok:
        row["error"] = failure_reason(row)
        return row
    for key in ("cells_shown_s", "first_gene_s", "click_median_ms", "click_worst_ms", "click_densest_ms", "peak_mib"):
        values = [r[key] for r in ok if r.get(key) is not None]
        row[key] = statistics.median(values) if values else None
    stores = [r["store"] for r in ok if r.get("store")]
    if stores:
        row["store_kind"] = stores[0].get("kind")
        row["build_s"] = statistics.median(s.get("seconds") or 0.0 for s in stores)
        row["build_mib"] = statistics.median((s.get("disk_bytes") or 0) / 2**20 for s in stores)
    return row


def failure_reason(row: dict) -> str:
    """The server's own last log line from the runs that did not open (else the harness's error)."""
    said = [line.strip() for r in row.get("raw", []) for line in r.get("log_tail", "").splitlines() if line.strip()]
    return said[-1] if said else str(row.get("error", "not run"))


def add_ratios(rows: list[dict]) -> None:
    by = {(r["cells"], r["contender"]): r for r in rows}
    for r in rows:
        floor = by.get((r["cells"], "floor"))
        if floor and r["contender"] != "floor" and r.get("opened"):
            for key, to, of in (
                ("cells_vs_floor", "cells_shown_s", "cells_shown_s"),
                ("click_vs_floor", "click_median_ms", "click_median_ms"),
                ("worst_vs_floor", "click_worst_ms", "click_worst_ms"),
            ):
                if r.get(to) and floor.get(of):
                    r[key] = r[to] / floor[of]
        plain = by.get((r["cells"], "plain"))
        if r["contender"] == "plain" or not plain or not plain.get("first_gene_s") or not r.get("first_gene_s"):
            continue
        r["first_vs_plain"] = r["first_gene_s"] / plain["first_gene_s"]
        r["peak_vs_plain"] = r["peak_mib"] / plain["peak_mib"]
        r["click_vs_plain"] = r["click_median_ms"] / plain["click_median_ms"]
