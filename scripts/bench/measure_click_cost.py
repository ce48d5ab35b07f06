#!/usr/bin/env python
"""Where a gene click's time goes: each store's read, cellxgene's encoding against the gene-click
layer's template (gene_clicks.py), and the compressions a browser may get.

Usage (after make_bench_data.py --atlas 100000 and one build of the store; the runtime is
importable in .venv through the editable install scripts/setup-venv.sh makes):
    .venv/bin/python -c "from galaxy_cellxgene.column_file import build_column_file as b; \\
        print(b('bench-data/atlas_100k.h5ad', 'bench-data/atlas_100k.columns.h5'))"
    PYTHONPATH=scripts .venv/bin/python scripts/bench/measure_click_cost.py \\
        bench-data/atlas_100k.h5ad bench-data/atlas_100k.columns.h5
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

import brotli
import numpy as np
from backports import zstd
from galaxy_cellxgene.column_file import ColumnFile
from galaxy_cellxgene.columns import read_row_blocks
from galaxy_cellxgene.gene_clicks import matrix_template
from server.common.fbs.matrix import encode_matrix_fbs

try:  # the benchmark's package: scripts/ must be on the path (this file's folder is scripts/bench)
    from bench.atlas import AtlasData
except ModuleNotFoundError:
    print("measure_click_cost.py needs scripts/ on the path: PYTHONPATH=scripts .venv/bin/python ...", file=sys.stderr)
    sys.exit(2)


def main(source: str, store_path: str, clicks: int = 40) -> None:
    ds = AtlasData.load(Path(source), Path(source).stem)
    disk, memory = ColumnFile(store_path), read_row_blocks(source)
    template = matrix_template(ds.n_cells)
    rng = random.Random(17)  # the benchmark's genes
    genes = [*rng.sample(range(len(ds.genes)), clicks - 1), ds.genes.index(ds.densest)]
    answers = {g: disk.select(None, np.array([g])) for g in genes}
    bodies = {g: bytes(template.encode(*disk.gene(g), g)) for g in genes}
    steps = {
        "disk store read, gene()": lambda g: disk.gene(g),
        "memory store read, gene()": lambda g: memory.gene(g),
        "cellxgene's encoder (sparse in)": lambda g: encode_matrix_fbs(answers[g], col_idx=np.array([0])),
        "disk read + template encode (gene_clicks)": lambda g: template.encode(*disk.gene(g), g),
        "zstd 1": lambda g: zstd.compress(bodies[g], 1),
        "zstd -5": lambda g: zstd.compress(bodies[g], -5),
        "zstd 3 (Flask-Compress)": lambda g: zstd.compress(bodies[g], 3),
        "brotli 1": lambda g: brotli.compress(bodies[g], quality=1),
    }
    for key, step in steps.items():
        times = []
        for g in genes:
            # Best of 5: the machine is shared, the minimum is the step's own cost.
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                step(g)
                best = min(best, time.perf_counter() - t0)
            times.append(best)
        print(f"{key}: median {statistics.median(times) * 1000:.3f} ms, densest {times[-1] * 1000:.3f} ms")
    print("load average", Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] in {"-h", "--help"}:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
