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

The code is in scripts/bench/: cli.py (options, the run), sections/ (one module per section),
report.py and report_atlas.py (the tables), docs_block.py (docs/benchmarks.md's marked blocks).

Usage:
  .venv/bin/python scripts/data/make_bench_data.py       # once: bench-data/synth_*.h5ad
  .venv/bin/python scripts/benchmark.py                   # everything (about 20 minutes)
  .venv/bin/python scripts/benchmark.py --quick           # smoke test: demo and 10k cells, N=1
  .venv/bin/python scripts/benchmark.py --write-docs      # and refresh docs/benchmarks.md
  .venv/bin/python scripts/benchmark.py --only atlas --write-docs   # issue 17 (make_bench_data.py --atlas first)
"""

from __future__ import annotations

import sys

# scripts/ (this file's folder) is on sys.path when it runs as a script: bench/ and data/ are packages there.
from bench.cli import main

if __name__ == "__main__":
    sys.exit(main(__doc__.splitlines()[0]))
