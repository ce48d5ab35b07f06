#!/usr/bin/env python
"""A running viewer's per-request cost over HTTP: /health (waitress and Flask, nearly nothing else)
against a gene click, with the browser's Accept-Encoding and with none (identity).

Usage (a viewer started on PORT from bench-data/atlas_100k.h5ad, e.g. `python -m galaxy_cellxgene view
bench-data/atlas_100k.h5ad --x-store disk --port PORT --register never --idle-timeout 0 ...`):
    PYTHONPATH=scripts .venv/bin/python scripts/bench/measure_click_http.py bench-data/atlas_100k.h5ad PORT
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

try:  # the benchmark's package: scripts/ must be on the path (this file's folder is scripts/bench)
    from bench import procs
    from bench.atlas import AtlasData
except ModuleNotFoundError:
    print("measure_click_http.py needs scripts/ on the path: PYTHONPATH=scripts .venv/bin/python ...", file=sys.stderr)
    sys.exit(2)


def main(source: str, port: int, clicks: int = 200) -> None:
    ds = AtlasData.load(Path(source), Path(source).stem)
    client = procs.Http(port)
    _, _, body = client.get(procs.API + "schema", {"Accept": "application/json"})
    column = json.loads(body)["schema"]["annotations"]["var"]["index"]
    genes = random.Random(1).sample(ds.genes, clicks)

    def timed(path: str, headers: dict[str, str]) -> float:
        t0 = time.perf_counter()
        status, _, _ = client.get(path, headers)
        if status != 200:
            raise procs.BenchError(f"{path}: {status}")
        return (time.perf_counter() - t0) * 1000

    identity = {"Accept": "application/octet-stream"}
    for _ in range(2):  # the first round also warms the store's pages
        health = [timed("/health", {}) for _ in range(clicks)]
        click = [timed(procs.expression_path(column, ds.named(column, g)), procs.BINARY_HEADERS) for g in genes]
        plain = [timed(procs.expression_path(column, ds.named(column, g)), identity) for g in genes]
        print(
            f"health {statistics.median(health):.2f} ms, click {statistics.median(click):.2f} ms "
            f"(worst {max(click):.1f}), click without compression {statistics.median(plain):.2f} ms (medians); "
            f"load {Path('/proc/loadavg').read_text().split()[:3]}"
        )


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] in {"-h", "--help"}:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]))
