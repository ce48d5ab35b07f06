#!/usr/bin/env python
"""Where a gene click's time goes: the on-disk store's read, cellxgene's encoding, compression.

Usage (after make_bench_data.py --atlas 1000000 and one build of the store; the runtime is
importable in .venv through the editable install scripts/setup-venv.sh makes):
    .venv/bin/python -c "from galaxy_cellxgene.column_file import build_column_file as b; \\
        print(b('bench-data/atlas_1m.h5ad', 'bench-data/atlas_1m.columns.h5'))"
    PYTHONPATH=scripts .venv/bin/python scripts/bench/measure_click_cost.py \\
        bench-data/atlas_1m.h5ad bench-data/atlas_1m.columns.h5
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from backports import zstd
from galaxy_cellxgene.column_file import ColumnFile
from server.common.fbs.matrix import encode_matrix_fbs

try:  # the benchmark's package: scripts/ must be on the path (this file's folder is scripts/bench)
    from bench.atlas import AtlasData
except ModuleNotFoundError:
    print("measure_click_cost.py needs scripts/ on the path: PYTHONPATH=scripts .venv/bin/python ...", file=sys.stderr)
    sys.exit(2)


def main(source: str, store_path: str, clicks: int = 40) -> None:
    ds = AtlasData.load(Path(source), Path(source).stem)
    store = ColumnFile(store_path)
    rng = random.Random(17)  # the benchmark's genes
    genes = [*rng.sample(range(len(ds.genes)), clicks - 1), ds.genes.index(ds.densest)]
    times: dict[str, list[float]] = {"store read": [], "encode (sparse in)": [], "encode (dense in)": [], "zstd 3": []}
    col = np.array([0])
    steps = {
        "store read": lambda g: store.select(None, np.array([g])),
        "encode (sparse in)": lambda g: encode_matrix_fbs(answers[g], col_idx=col),
        "encode (dense in)": lambda g: encode_matrix_fbs(answers[g].toarray(), col_idx=col),
        "zstd 3": lambda g: zstd.compress(encoded[g], 3),
    }
    answers = {g: store.select(None, np.array([g])) for g in genes}
    encoded = {g: bytes(encode_matrix_fbs(answers[g].toarray(), col_idx=col)) for g in genes}
    for g in genes:
        for key, step in steps.items():
            # Best of 5: the machine is shared, the minimum is the step's own cost.
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                step(g)
                best = min(best, time.perf_counter() - t0)
            times[key].append(best)
    for key, xs in times.items():
        print(f"{key}: median {statistics.median(xs) * 1000:.1f} ms, worst {max(xs) * 1000:.1f} ms (best of 5 each)")
    print("load average", Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] in {"-h", "--help"}:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
