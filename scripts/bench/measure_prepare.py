#!/usr/bin/env python
"""Cost of the runtime's preparation step (check + prepare) on one dataset, per case.

    .venv/bin/python scripts/bench/measure_prepare.py bench-data/synth_200k.h5ad [-n 5]

Reports medians of N runs: the quick check cellxgene's start-up path runs, the thorough
check `check` mode runs, and prepare (symlink, or a small h5ad of external links), plus the
size of what prepare wrote. The matrix is never read, so none of these grows with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

# The runtime is importable in .venv through the editable install scripts/setup-venv.sh makes.
from galaxy_cellxgene.prepare import prepare
from galaxy_cellxgene.settings import ViewerOptions
from galaxy_cellxgene.validate import inspect

CASES = {
    "as it is": ViewerOptions(),
    "unique gene symbols": ViewerOptions(var_names="gene_symbols", make_var_names_unique=True),
    "layer 'counts' as X": ViewerOptions(layer="counts"),
}


def median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("-n", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(f"{args.dataset} ({args.dataset.stat().st_size / 2**20:.0f} MiB), medians of {args.n}")
    print("| case | quick check (ms) | full check (ms) | prepare (ms) | written | how |")
    print("|---|---|---|---|---|---|")
    import h5py

    with h5py.File(args.dataset, "r") as f:
        layers = set(f["layers"]) if "layers" in f else set()
    for name, options in CASES.items():
        if options.layer and options.layer not in layers:
            continue
        quick = median_ms(lambda o=options: inspect(args.dataset, o, thorough=False), args.n)
        full = median_ms(lambda o=options: inspect(args.dataset, o), args.n)
        work = Path(tempfile.mkdtemp())
        prep = median_ms(lambda o=options, w=work: prepare(args.dataset, w, o), args.n)
        result = prepare(args.dataset, work, options)
        size = os.lstat(result.path).st_size
        print(f"| {name} | {quick:.0f} | {full:.0f} | {prep:.1f} | {size / 1024:.0f} KiB | {result.reason} |")


if __name__ == "__main__":
    main()
