#!/usr/bin/env python3
"""Time to refusal and peak memory of the runtime's commands on the crafted files of issue 22.

Builds each crafted file with galaxy_cellxgene_testkit/hostile_h5ad.py, runs `check`, `view` (under
GALAXY_MEMORY_MB, 512 by default) and `merge` on it as the tool does, and prints one Markdown
row per run: exit code (negative: killed by that signal; "served" if the view started), wall
time, peak RSS of the command's process (VmHWM, polled every 20 ms: wait4's ru_maxrss would
include this script's own RSS, which Linux carries over fork), and the first ERROR line.

    .venv/bin/python scripts/bench/measure_crafted.py                       # this checkout's runtime
    .venv/bin/python scripts/bench/measure_crafted.py --tool-dir /tmp/base  # another runtime (before)

A run is ended after --cap seconds (or once a view serves): its row then says so.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from galaxy_cellxgene_testkit import hostile_h5ad as crafted

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    "reference out of frame (unlinked external storage)": lambda d: crafted.make_legacy(d, "external storage"),
    "deep nesting (12,000 groups)": lambda d: crafted.make_deep(d, 12_000),
    "huge dense X, chunks unwritten (2.2 GiB declared)": lambda d: crafted.make_huge_dense(d, stored=False),
    "huge dense X, deflated zeros stored (2.2 GiB)": lambda d: crafted.make_huge_dense(d, stored=True),
    "sparse X of 150 M stored zeros": crafted.make_huge_sparse,
    "uns entry of 1 GiB stored zeros": crafted.make_huge_uns,
    "sparse X, column index out of range": lambda d: crafted.make_sparse(d, "index-out-of-range"),
    "sparse X, index pointer decreasing": lambda d: crafted.make_sparse(d, "indptr-decreasing"),
    "unavailable filter (Blosc)": crafted.make_unavailable_filter,
    "user-defined link": crafted.make_user_defined_link,
    "categorical code out of range": lambda d: crafted.make_codes_out_of_range(d, 7),
}


def run(args: list[str], env: dict, cwd: Path, cap: float, served: Path | None) -> tuple[str, float, float, str]:
    started = time.monotonic()
    log = cwd / "log.txt"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "galaxy_cellxgene", *args],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    outcome = None
    peak_kib = 0
    while True:
        peak_kib = max(peak_kib, _hwm_kib(proc.pid))
        pid, status, _usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status)
            break
        if served is not None and served.exists():
            outcome = "served"
        elif time.monotonic() - started > cap:
            outcome = f"still running at {cap:.0f} s"
        if outcome:
            os.killpg(proc.pid, signal.SIGKILL)
            pid, status, _usage = os.wait4(proc.pid, 0)
            code = None
            break
        time.sleep(0.02)
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace")
    first = next((line for line in text.splitlines() if line.startswith("ERROR:")), "")
    if not first and "most recent call first" in text:
        first = "(faulthandler watchdog: thread dump)"
    elif not first and "Traceback" in text:
        first = "(traceback)"
    verdict = outcome or str(code)
    return verdict, seconds, peak_kib / 1024, first


def _hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tool-dir", type=Path, default=ROOT / "tools" / "cellxgene")
    parser.add_argument("--memory-mb", default="512")
    parser.add_argument("--cap", type=float, default=120.0)
    parser.add_argument("--commands", default="check,view,merge")
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    options = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(options.tool_dir)}
    print("| crafted file | command | exit | seconds | peak RSS MiB | first ERROR line |")
    print("|---|---|---|---|---|---|")
    for name, build in CASES.items():
        if options.only and options.only not in name:
            continue
        with tempfile.TemporaryDirectory(prefix="crafted-") as tmp:
            folder = Path(tmp)
            path = build(folder / "data")
            for command in options.commands.split(","):
                job = folder / f"job-{command}"
                (job / "working").mkdir(parents=True)
                if command == "view":
                    args = [
                        "view",
                        str(path),
                        "--annotations-out",
                        str(job / "a.csv"),
                        "--gene-sets-out",
                        str(job / "g.csv"),
                    ]
                    run_env = {**env, "GALAXY_MEMORY_MB": options.memory_mb}
                    served = job / "container_runtime.json"
                elif command == "merge":
                    args, run_env, served = ["merge", str(path), "--output", str(job / "m.h5ad")], env, None
                else:
                    args, run_env, served = ["check", str(path), "--report", str(job / "r.md")], env, None
                verdict, seconds, rss, first = run(args, run_env, job / "working", options.cap, served)
                label = f"view (GALAXY_MEMORY_MB={options.memory_mb})" if command == "view" else command
                shown = (first[:110] + "...") if len(first) > 110 else first
                print(
                    f"| {name} | {label} | {verdict} | {seconds:.1f} | {rss:,.0f} | {shown.replace('|', '/')} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
