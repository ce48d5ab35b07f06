#!/usr/bin/env python
"""Peak memory of writing a cell subset of an atlas-sized h5ad (issue 26), against anndata's own way.

Each contender runs in a fresh process; its peak RSS is the kernel's count for that child
(getrusage RUSAGE_CHILDREN after it exits), so nothing is sampled and nothing is missed.

  runtime   `python -m galaxy_cellxgene merge INPUT --subset-by C --subset-label L --subsets-dir D`:
            the small parts through anndata, X, layers and raw/X streamed in blocks (subset.py)
  anndata   `anndata.read_h5ad(INPUT)[mask].copy().write_h5ad(OUT)`: the whole file in memory

--data-limit-gib N runs the contender under `prlimit --data` (as the atlas section of benchmark.py
runs its servers): on a shared machine anndata's in-memory subset of a 1M-cell atlas (~29 GiB by
the 100k-200k slope) must fail inside its ceiling, not take the machine down. A contender that
fails is still a row: its peak up to the failure, its wall time and its own last word on stderr.

Usage:
    .venv/bin/python scripts/data/make_bench_data.py --sizes '' --atlas 100000
    .venv/bin/python scripts/bench/measure_subset.py bench-data/atlas_100k.h5ad --category cell_type --label type_00
"""

from __future__ import annotations

import argparse
import os
import platform
import re
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


def run(command: list[str], errors: Path) -> tuple[float, float, str | None]:
    """(wall seconds, peak RSS MiB, None or the child's last stderr line when it failed) of one child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tools" / "cellxgene")}
    with errors.open("w+") as err:
        code = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=err).returncode
        err.seek(0)
        said = err.read()
    sys.stderr.write(said)  # the child's own messages, as before, once it has exited
    wall = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux: the largest child so far
    if peak <= before:
        print("note: this child's peak is not above an earlier one; run one contender per call", file=sys.stderr)
    return wall, peak / 1024, None if code == 0 else f"exit {code}: {last_word(said)}"


def last_word(stderr: str) -> str:
    """The exception a failed child died of (anndata adds a note line after it, "Error raised while
    reading key ..."), with that note; else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"[\w.]+(Error|Exception)\b[^ ]*:", line)]
    if not raised:
        return lines[-1] if lines else "no message"
    return raised[-1] if raised[-1] == lines[-1] else f"{raised[-1]}; {lines[-1]}"


def subset_command(args: argparse.Namespace, out: Path) -> list[str]:
    """The contender's command: the runtime's merge with a subset, or anndata's own way (ANNDATA_WAY);
    under `prlimit --data` when --data-limit-gib is given."""
    cap = ["prlimit", f"--data={int(args.data_limit_gib * 2**30)}"] if args.data_limit_gib else []
    if args.contender == "runtime":
        return [
            *cap,
            sys.executable,
            "-m",
            "galaxy_cellxgene",
            "merge",
            str(args.input),
            f"--subset-by={args.category}",
            f"--subset-label={args.label}",
            f"--subsets-dir={out}",
        ]
    return [*cap, sys.executable, "-c", ANNDATA_WAY, str(args.input), args.category, args.label, str(out / "a.h5ad")]


def input_summary(path: Path) -> str:
    """The table's input cell: shape, stored values of the three matrices, file size."""
    import h5py

    with h5py.File(path, "r") as f:
        shape = tuple(int(v) for v in f["X"].attrs["shape"]) if "shape" in f["X"].attrs else f["X"].shape
        stored = sum(f[k]["data"].size for k in ("X", "layers/counts", "raw/X") if k in f and "data" in f[k])
    return (
        f"{shape[0]:,} x {shape[1]:,} ({stored / 1e6:.0f} M stored values in X, counts, raw/X; "
        f"{path.stat().st_size / 2**30:.1f} GiB)"
    )


def written_summary(out: Path) -> str:
    """The subset the contender wrote: its cells and file size."""
    import h5py

    [written] = list(out.glob("*.h5ad"))
    with h5py.File(written, "r") as f:
        cells = int(f["X"].attrs["shape"][0]) if "shape" in f["X"].attrs else f["X"].shape[0]
    return f"{cells:,} cells ({written.stat().st_size / 2**20:.0f} MiB)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path)
    parser.add_argument("--category", default="cell_type")
    parser.add_argument("--label", default="type_00")
    parser.add_argument("--contender", choices=["runtime", "anndata"], default="runtime")
    parser.add_argument("--data-limit-gib", type=float, help="run the contender under prlimit --data=N GiB")
    args = parser.parse_args()

    summary = input_summary(args.input)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=args.input.parent) as scratch:
        out = Path(scratch)
        wall, peak, failure = run(subset_command(args, out), out / "stderr.txt")
        written = written_summary(out) if failure is None else f"not written ({failure[:240]})"
    load_after = os.getloadavg()
    limit = f" (prlimit --data={args.data_limit_gib:g}GiB)" if args.data_limit_gib else ""
    print(
        f"| {summary} | {args.category} = {args.label}: {written} | {args.contender}{limit} | {peak:.0f} | "
        f"{wall:.1f} | {' '.join(f'{v:.2f}' for v in load_before)} / {' '.join(f'{v:.2f}' for v in load_after)} |"
    )
    print(f"({platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()})", file=sys.stderr)
    return 0 if failure is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
