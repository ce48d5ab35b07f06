"""What every part of the benchmark shares: the checkout's paths, the log line, medians and paired ratios."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

VENV = REPO / ".venv"
PY = str(VENV / "bin" / "python")
CELLXGENE = str(VENV / "bin" / "cellxgene")
RECIPE = str(REPO / "scripts" / "bench" / "recipe_111.py")
TOOL_DIR = REPO / "tools" / "cellxgene"
MIB = 1024.0


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def med(xs: Iterable[float]) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")


def paired(a: Sequence[float], b: Sequence[float]) -> float:
    """Median of per-repetition ratios a_i / b_i."""
    return med(x / y for x, y in zip(a, b, strict=True) if y)


def rotate(xs: list, k: int) -> list:
    k %= len(xs)
    return xs[k:] + xs[:k]


def runtime_available() -> bool:
    return (TOOL_DIR / "galaxy_cellxgene" / "cli.py").exists()
