"""scripts/benchmark.py's command line: its options, the datasets they name, the run and its outputs."""

from __future__ import annotations

import argparse
import atexit
import json
import signal
import sys
import time
from pathlib import Path

from data.make_bench_data import dataset_name

from bench import procs
from bench.cases import DEMO, Dataset, load_dataset
from bench.common import REPO, TOOL_DIR, log, runtime_available
from bench.docs_block import DOCS, publish
from bench.harness import Bench
from bench.report import render
from bench.report_atlas import render_atlas
from bench.run_meta import run_meta
from bench.sections import atlas, memory, ready, save, serve

SECTIONS = {"ready": ready.run, "memory": memory.run, "serve": serve.run, "save": save.run, "atlas": atlas.run}


def build_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", type=Path, default=REPO / "bench-data", help="where make_bench_data.py wrote")
    p.add_argument("--sizes", default="demo,10000,100000,500000", help="cell counts of bench-data/, and demo")
    p.add_argument("--only", default="ready,memory,serve,save", help="sections to run")
    p.add_argument("--cases", default="plain,unique,layer", help="time-to-ready cases")
    p.add_argument("--contenders", default="plain,recipe-1.1.1,runtime")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also measure `python -m galaxy_cellxgene` from DIR (a patched copy of tools/cellxgene)",
    )
    p.add_argument("-n", type=int, default=5, help="repetitions (medians of N)")
    p.add_argument("--mem-reps", type=int, default=3)
    p.add_argument(
        "--mem-variants",
        default="layers-memory,nolayers-memory,layers-backed,nolayers-backed",
        help="input-mode pairs for the memory section",
    )
    p.add_argument("--serve-sizes", default="100k", help="dataset labels to run the serving benchmark on")
    p.add_argument("--serve-reps", type=int, default=1)
    p.add_argument("--clients", default="1,4,16")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per serving cell")
    p.add_argument("--warm-s", type=float, default=1.0, help="untimed seconds of the same load before each cell")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the discarded first round")
    p.add_argument("--quick", action="store_true", help="smoke test: demo and 10k cells, N=1, short serving cells")
    add_output_options(p)
    return p


def add_output_options(p: argparse.ArgumentParser) -> None:
    """Where results go, and the atlas section's own knobs (after the others, as --help has always listed them)."""
    p.add_argument("--keep-runs", action="store_true", help="keep bench-data/runs/* (logs, outputs)")
    p.add_argument("--write-docs", action="store_true", help="replace the results block of docs/benchmarks.md")
    p.add_argument("--json", type=Path, help="also write raw results here (default bench-data/results-*.json)")
    p.add_argument("--from-json", type=Path, help="only render (and --write-docs) a saved results file")
    p.add_argument("--atlas-sizes", default="100000,1000000", help="atlas section: cell counts of atlas_*.h5ad")
    p.add_argument("--atlas-reps", type=int, default=1, help="atlas section: runs per contender")
    p.add_argument("--atlas-clicks", type=int, default=40, help="atlas section: gene clicks per run")
    p.add_argument("--atlas-wait", type=float, default=900.0, help="atlas section: seconds allowed to open")
    p.add_argument("--data-limit-gib", type=float, default=10.0, help="atlas section: prlimit --data per server")


def prepare(args: argparse.Namespace) -> None:
    """--quick's settings, the comma lists as lists, and the runtimes to measure (this checkout's, --variant)."""
    if args.quick:
        args.sizes, args.n, args.mem_reps, args.warmup = "demo,10000", 1, 1, False
        args.duration, args.warm_s, args.clients = 2.0, 0.5, "1,16"
    args.cases = [c for c in args.cases.split(",") if c]
    args.contenders = [c for c in args.contenders.split(",") if c]
    args.clients = [int(c) for c in str(args.clients).split(",") if c]
    args.serve_sizes = [s for s in args.serve_sizes.split(",") if s]
    args.runtimes = {}
    if "runtime" in args.contenders:
        if runtime_available():
            args.runtimes["runtime"] = TOOL_DIR
        else:
            log("runtime (tools/cellxgene/galaxy_cellxgene/cli.py) not there yet: measuring the others only")
    for spec in args.variant:
        name, _, root = spec.partition("=")
        args.runtimes[name] = Path(root).resolve()


def load_datasets(args: argparse.Namespace, sections: list[str]) -> list[Dataset] | None:
    """The datasets of --sizes, read once into the page cache; None (after saying which) if one is missing."""
    datasets = []
    if sections == ["atlas"]:
        args.sizes = ""  # the atlas section reads its own datasets
    for size in (s for s in args.sizes.split(",") if s):
        if size == "demo":
            datasets.append(load_dataset(DEMO, "demo"))
            continue
        path = args.data / dataset_name(int(size))
        if not path.exists():
            log(f"{path} missing: run scripts/data/make_bench_data.py --sizes {size}")
            return None
        datasets.append(load_dataset(path))
    return datasets


def reports(results: dict, meta: dict) -> tuple[str, str]:
    """Sections 1-4's report and the atlas section's (each empty when its sections did not run)."""
    rest = {k: v for k, v in results.items() if k != "atlas"}
    report = render(rest, meta) if rest else ""
    atlas_report = render_atlas(results["atlas"], meta) if "atlas" in results else ""
    return report, atlas_report


def from_json(args: argparse.Namespace) -> int:
    saved = json.loads(args.from_json.read_text())
    report, atlas_report = reports(saved["results"], saved["meta"])
    print(report + atlas_report)
    if args.write_docs:
        publish(report, atlas_report)
    return 0


def run_sections(bench: Bench, sections: list[str], datasets: list[Dataset], out_json: Path) -> None:
    atexit.register(procs.stop_all)
    # SIGTERM (a killed run) unwinds like Ctrl-C, so the servers started so far are stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    for section in sections:
        bench.results[section] = SECTIONS[section](bench, datasets)
        # Written after every section: a run stopped late still leaves what it measured.
        out_json.write_text(json.dumps({"meta": {"partial": True}, "results": bench.results}, indent=1, default=str))


def main(description: str, argv: list[str] | None = None) -> int:
    parser = build_parser(description)
    args = parser.parse_args(argv)
    if args.from_json:
        return from_json(args)
    prepare(args)
    sections = [s for s in args.only.split(",") if s]
    if unknown := [s for s in sections if s not in SECTIONS]:
        parser.error(f"--only: no section {', '.join(unknown)} (the sections: {', '.join(SECTIONS)})")
    datasets = load_datasets(args, sections)
    if datasets is None:
        return 2
    bench = Bench(args, args.data)
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    t0 = time.perf_counter()
    out_json = args.json or args.data / f"results-{time.strftime('%Y%m%dT%H%M%S')}.json"
    run_sections(bench, sections, datasets, out_json)
    meta = run_meta(args, argv, load_before, t0)
    report, atlas_report = reports(bench.results, meta)
    print(report + atlas_report)
    out_json.write_text(json.dumps({"meta": meta, "results": bench.results}, indent=1, default=str))
    log(f"raw results: {out_json}")
    if args.write_docs:
        publish(report, atlas_report)
        log(f"updated {DOCS}")
    return 0
