"""Fixtures for the hosted-safety suite (issue 7)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH_100K = ROOT / "bench-data" / "synth_100k.h5ad"


@pytest.fixture(scope="session")
def bench_dataset() -> Path:
    """The benchmark's 100,000-cell dataset (issue 6's generator: same file, deterministic, cached)."""
    if not BENCH_100K.exists():
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "data" / "make_bench_data.py"),
                "--sizes",
                "100000",
                "--no-nolayers",
            ],
            check=True,
            timeout=900,
        )
    return BENCH_100K
