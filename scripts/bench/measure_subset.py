#!/usr/bin/env python
"""Peak memory of writing a cell subset of an atlas-sized h5ad (issue 26), against anndata's own way.

Each contender runs in a fresh process; its peak RSS is the kernel's count for that child
(getrusage RUSAGE_CHILDREN after it exits), so nothing is sampled and nothing is missed.

  runtime   `python -m galaxy_cellxgene merge INPUT --subset-by C --subset-label L --subsets-dir D`:
            the small parts through anndata, X, layers and raw/X streamed in blocks (subset.py)
  anndata   `anndata.read_h5ad(INPUT)[mask].copy().write_h5ad(OUT)`: the whole file in memory

Usage:
    .venv/bin/python scripts/data/make_bench_data.py --sizes '' --atlas 100000
    .venv/bin/python scripts/bench/measure_subset.py bench-data/atlas_100k.h5ad --category cell_type --label type_00
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANNDATA_WAY = """
import sys, anndata as ad
adata = ad.read_h5ad(sys.argv[1])
mask = adata.obs[sys.argv[2]].astype(str).isin([sys.argv[3]]).to_numpy()
adata[mask].copy().write_h5ad(sys.argv[4])
"""


def run(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tools" / "cellxgene")}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux: the largest child so far
    if peak <= before:
        print("note: this child's peak is not above an earlier one; run one contender per call", file=sys.stderr)
    return wall, peak / 1024


def subset_command(args: argparse.Namespace, out: Path) -> list[str]:
    """The contender's command: the runtime's merge with a subset, or anndata's own way (ANNDATA_WAY)."""
    if args.contender == "runtime":
        return [
            sys.executable,
            "-m",
            "galaxy_cellxgene",
            "merge",
            str(args.input),
            f"--subset-by={args.category}",
            f"--subset-label={args.label}",
            f"--subsets-dir={out}",
        ]
    return [sys.executable, "-c", ANNDATA_WAY, str(args.input), args.category, args.label, str(out / "a.h5ad")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path)
    parser.add_argument("--category", default="cell_type")
    parser.add_argument("--label", default="type_00")
    parser.add_argument("--contender", choices=["runtime", "anndata"], default="runtime")
    args = parser.parse_args()

    import h5py

    with h5py.File(args.input, "r") as f:
        shape = tuple(int(v) for v in f["X"].attrs["shape"]) if "shape" in f["X"].attrs else f["X"].shape
        stored = sum(f[k]["data"].size for k in ("X", "layers/counts", "raw/X") if k in f and "data" in f[k])
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=args.input.parent) as scratch:
        out = Path(scratch)
        wall, peak = run(subset_command(args, out))
        [written] = list(out.glob("*.h5ad"))
        with h5py.File(written, "r") as f:
            cells = int(f["X"].attrs["shape"][0]) if "shape" in f["X"].attrs else f["X"].shape[0]
        size = written.stat().st_size
    load_after = os.getloadavg()
    print(
        f"| {shape[0]:,} x {shape[1]:,} ({stored / 1e6:.0f} M stored values in X, counts, raw/X; "
        f"{args.input.stat().st_size / 2**30:.1f} GiB) | {args.category} = {args.label}: {cells:,} cells "
        f"({size / 2**20:.0f} MiB) | {args.contender} | {peak:.0f} | {wall:.1f} | "
        f"{' '.join(f'{v:.2f}' for v in load_before)} / {' '.join(f'{v:.2f}' for v in load_after)} |"
    )
    print(f"({platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
