"""What a report says about its run: when, on what machine, under what load, with which command."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import time
from pathlib import Path


def machine_info() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    from importlib.metadata import version

    return (
        f"{os.cpu_count()} cores ({model}), {mem_kib / 2**20:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}, cellxgene {version('cellxgene')}, anndata {version('anndata')}"
    )


def run_meta(args: argparse.Namespace, argv: list[str] | None, load_before: str, t0: float) -> dict:
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "load_before": load_before,
        "load_after": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "command": "scripts/benchmark.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "elapsed_min": (time.perf_counter() - t0) / 60,
        "n": args.n,
        "limit_gib": args.data_limit_gib,
        "clicks": args.atlas_clicks,
        "reps": args.atlas_reps,
    }
