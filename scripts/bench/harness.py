"""One benchmark run's state: its options, where each server runs, and starting/stopping a server."""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bench import procs


@dataclass
class Bench:
    args: argparse.Namespace
    out_dir: Path
    results: dict = field(default_factory=dict)
    run_counter: int = 0

    def run_dir(self, name: str) -> Path:
        self.run_counter += 1
        # The pid keeps two harnesses (say, a quick check beside a full run) out of each other's way.
        d = self.out_dir / "runs" / f"{os.getpid()}-{self.run_counter:04d}-{name}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d

    def launch(self, launch: procs.Launch, run_dir: Path, gene: str, n_cells: int) -> procs.Started:
        st = procs.start(launch, procs.free_port(), run_dir, dict(os.environ))
        try:
            rows = procs.wait_ready(st, gene)
        except BaseException:
            procs.stop(st)
            raise
        if rows != n_cells:
            procs.stop(st)
            raise procs.BenchError(f"{launch.name}: expression answer has {rows} rows, want {n_cells}")
        return st

    def finish(self, st: procs.Started, run_dir: Path) -> None:
        procs.stop(st)
        if not self.args.keep_runs:
            shutil.rmtree(run_dir, ignore_errors=True)
