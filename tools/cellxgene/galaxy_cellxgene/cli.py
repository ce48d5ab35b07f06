"""Thin command line: `check`, `view`, `merge`. Everything real lives in the modules it calls."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

from galaxy_cellxgene.settings import ViewerOptions, idle_timeout_seconds

EXIT_INPUT = 2
# The checks read metadata only (under a second at 500k cells); far longer means h5py is stuck.
WATCHDOG_SECONDS = 60


def _view_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("what cellxgene shows")
    g.add_argument("--title", help="viewer title (default: the input's name)")
    g.add_argument("--title-file", type=Path, help="read the title from this file (keeps any text away from a shell)")
    g.add_argument("--var-names", metavar="COL", help="var column holding gene symbols")
    g.add_argument("--make-var-names-unique", action="store_true", help="append -1, -2 to duplicate gene names")
    g.add_argument("--obs-names", metavar="COL", help="obs column holding cell names")
    g.add_argument("--embedding", action="append", default=[], metavar="NAME", help="embedding to show (repeat)")
    g.add_argument("--layer", metavar="NAME", help="show this layer instead of X")
    g.add_argument("--previous-annotations", type=Path, metavar="CSV", help="cell labels to resume from")
    g.add_argument("--previous-gene-sets", type=Path, metavar="CSV", help="gene sets to resume from")
    g.add_argument("--disable-diffexp", action="store_true")
    g.add_argument("--disable-annotations", action="store_true")
    g.add_argument("--disable-gene-sets-save", action="store_true")
    g.add_argument("--disable-custom-colors", action="store_true")
    g.add_argument("--max-category-items", type=int, default=1000, metavar="N")
    g.add_argument("--diffexp-lfc-cutoff", type=float, default=0.01, metavar="F")
    g.add_argument("--backed", action="store_true", help="read X from disk on demand (less memory, slower)")
    g.add_argument(
        "--x-store",
        choices=["auto", "memory", "disk"],
        default="auto",
        help="where gene requests read X: a column copy in memory, or on disk (auto: by the job's memory)",
    )
    g.add_argument(
        "--memory-mb",
        type=int,
        default=0,
        metavar="MB",
        help="the job's memory, for --x-store auto (0: $GALAXY_MEMORY_MB, set by Galaxy)",
    )
    g.add_argument("--idle-timeout", type=float, default=0, metavar="MINUTES", help="finish after idling (0: never)")
    g.add_argument("--x-distribution", choices=["auto", "normal", "count"], default="auto")
    g.add_argument(
        "--diffexp-max-cells",
        type=int,
        default=0,
        metavar="N",
        help="most cells one differential expression may compare (0: derived from --diffexp-memory-mb)",
    )
    g.add_argument(
        "--diffexp-memory-mb",
        type=int,
        default=4096,
        metavar="MB",
        help="memory one differential expression may use; sets the cell limit from the gene count",
    )
    g.add_argument(
        "--diffexp-concurrency",
        type=int,
        default=1,
        metavar="N",
        help="differential expression computations at once; more wait in line, then get 503",
    )


def title_from_args(args: argparse.Namespace) -> str | None:
    if args.title_file is not None:
        # One line, bounded: a title is a label, and cellxgene shows it in the page header.
        text = args.title_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return text[0].strip()[:200] if text else None
    return args.title or None


def options_from_args(args: argparse.Namespace) -> ViewerOptions:
    return ViewerOptions(
        title=title_from_args(args),
        var_names=args.var_names or None,
        make_var_names_unique=args.make_var_names_unique,
        obs_names=args.obs_names or None,
        embeddings=tuple(e for e in args.embedding if e),
        layer=args.layer or None,
        previous_annotations=str(args.previous_annotations) if args.previous_annotations else None,
        previous_gene_sets=str(args.previous_gene_sets) if args.previous_gene_sets else None,
        diffexp=not args.disable_diffexp,
        annotations=not args.disable_annotations,
        gene_sets_save=not args.disable_gene_sets_save,
        custom_colors=not args.disable_custom_colors,
        max_category_items=args.max_category_items,
        diffexp_lfc_cutoff=args.diffexp_lfc_cutoff,
        backed=args.backed,
        x_store=args.x_store,
        memory_mb=args.memory_mb,
        idle_timeout_minutes=args.idle_timeout,
        x_distribution=args.x_distribution,
        diffexp_max_cells=args.diffexp_max_cells,
        diffexp_memory_mb=args.diffexp_memory_mb,
        diffexp_concurrency=args.diffexp_concurrency,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m galaxy_cellxgene", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="validate an h5ad and report what cellxgene will show")
    check.add_argument("input", type=Path)
    check.add_argument("--report", type=Path, help="write the Markdown report here")
    _view_options(check)

    view = sub.add_parser("view", help="serve cellxgene on the input; saves land in the outputs")
    view.add_argument("input", type=Path)
    view.add_argument("--annotations-out", type=Path, required=True)
    view.add_argument("--gene-sets-out", type=Path, required=True)
    view.add_argument("--merged-out", type=Path, help="merged h5ad, written on a clean finish")
    view.add_argument("--port", type=int, default=8888, help="declared port (the tool XML's entry point)")
    view.add_argument("--host", help="listen address (default: 0.0.0.0 in a container, else 127.0.0.1)")
    view.add_argument("--register", choices=["auto", "always", "never"], default="auto")
    view.add_argument("--runtime-json", type=Path, default=Path("..") / "container_runtime.json")
    view.add_argument("--work-dir", type=Path, default=Path("cellxgene-work"))
    view.add_argument("--threads", type=int, default=8)
    _view_options(view)

    merge = sub.add_parser("merge", help="merge a cellxgene annotations CSV (and gene sets) into an h5ad")
    merge.add_argument("input", type=Path)
    merge.add_argument("--annotations", type=Path)
    merge.add_argument("--gene-sets", type=Path)
    merge.add_argument("--output", type=Path, required=True)
    merge.add_argument("--replace-columns", action="store_true", help="replace obs columns of the same name")
    return parser


def fail(problems: list) -> int:
    for problem in problems:
        print(str(problem), file=sys.stderr)
    print(f"cellxgene cannot start: {len(problems)} problem(s) above.", file=sys.stderr)
    return EXIT_INPUT


def guarded_inspect(path: Path, options: ViewerOptions, thorough: bool = True):
    """Damaged HDF5 can hang inside h5py with the GIL held, where no Python timer fires;
    faulthandler's watchdog thread still ends the process (exit 1, with a traceback)."""
    import faulthandler

    from galaxy_cellxgene.validate import inspect

    # sys.__stderr__: the real descriptor even when stderr is captured (tests, notebooks).
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True, file=sys.__stderr__)
    try:
        return inspect(path, options, thorough=thorough)
    finally:
        faulthandler.cancel_dump_traceback_later()


def run_check(args: argparse.Namespace) -> int:
    from galaxy_cellxgene.report import render

    options = options_from_args(args)
    inspection = guarded_inspect(args.input, options)
    text = render(options.title or args.input.name, inspection, options)
    if args.report:
        args.report.write_text(text)
    else:
        sys.stdout.write(text)
    for problem in inspection.warnings:
        print(str(problem), file=sys.stderr)
    return fail(inspection.errors) if inspection.errors else 0


def run_view(args: argparse.Namespace) -> int:
    from galaxy_cellxgene.columns import start_column_copy
    from galaxy_cellxgene.prepare import prepare
    from galaxy_cellxgene.validate import inspect

    started = time.monotonic()
    options = options_from_args(args)
    inspection = guarded_inspect(args.input, options, thorough=False)
    for problem in inspection.warnings:
        print(str(problem), file=sys.stderr)
    if inspection.errors:
        return fail(inspection.errors)

    prepared = prepare(args.input, args.work_dir, options)
    # Before the heavy imports below: the copy's file reads and conversions release the GIL,
    # so it is built on the second core while this thread imports and loads cellxgene.
    columns = start_column_copy(prepared.path, options)

    from galaxy_cellxgene.app import Paths, StartupError, build_session
    from galaxy_cellxgene.serve import in_container, log, plan_binding, serve

    log(f"dataset prepared in {time.monotonic() - started:.2f} s ({prepared.reason})")
    paths = Paths(
        source=args.input.resolve(),
        prepared=prepared.path,
        work_dir=args.work_dir,
        annotations_out=args.annotations_out,
        gene_sets_out=args.gene_sets_out,
        merged_out=args.merged_out,
        previous_annotations=args.previous_annotations,
        previous_gene_sets=args.previous_gene_sets,
    )
    from galaxy_cellxgene.outputs import OutputNotWritable

    try:
        session = build_session(paths, options, columns)
    except OutputNotWritable as err:
        print(
            f"ERROR: the Galaxy output {err.path} cannot be written ({err.strerror}). "
            "Fix: check the job's disk space, quota and output directory permissions, then rerun.",
            file=sys.stderr,
        )
        return 1
    except StartupError as err:
        # The quick check skipped what cellxgene checks anyway; now report every problem.
        thorough = inspect(args.input, options)
        if thorough.errors:
            return fail(thorough.errors)
        print(f"ERROR: cellxgene refused the dataset: {err}", file=sys.stderr)
        return EXIT_INPUT
    log(f"cellxgene loaded {inspection.summary.n_obs} cells in {time.monotonic() - started:.2f} s")
    del inspection  # cell names can be tens of MiB; the server lives for hours
    binding = plan_binding(args.register, args.port, args.host, os.environ, in_container(os.environ))
    runtime_json = args.runtime_json.resolve() if binding.register else None
    return serve(session, binding, args.port, runtime_json, idle_timeout_seconds(options), args.threads)


def run_merge(args: argparse.Namespace) -> int:
    import h5py

    from galaxy_cellxgene.labels import LabelsError, merge_into_h5ad, read_gene_sets, read_labels
    from galaxy_cellxgene.validate import not_hdf5_problem, outside_data_problems, previous_file_problems

    if not h5py.is_hdf5(args.input):
        return fail([not_hdf5_problem(args.input)])
    refused = outside_data_problems(args.input, "The dataset")
    if args.annotations:
        refused += previous_file_problems(args.annotations, "The annotations")
    if args.gene_sets:
        refused += previous_file_problems(args.gene_sets, "The gene sets")
    if refused:
        return fail(refused)
    try:
        labels = read_labels(args.annotations) if args.annotations else None
        gene_sets = read_gene_sets(args.gene_sets) if args.gene_sets else None
        merge_into_h5ad(args.input, args.output, labels, gene_sets, overwrite=args.replace_columns)
    except LabelsError as err:
        print(f"ERROR: {err} Fix: {err.fix}", file=sys.stderr)
        return EXIT_INPUT
    columns = list(labels.columns) if labels is not None else []
    print(
        f"merged {len(columns)} categories ({', '.join(map(str, columns)) or 'none'}) and "
        f"{len(gene_sets or {})} gene sets into {args.output}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _main(argv)
    except Exception as err:  # never a traceback: one line naming what was read, exit code of its own
        from galaxy_cellxgene.failure import report

        return report(argv[0] if argv else "?", err)


def _main(argv: list[str]) -> int:
    if argv[:1] in (["view"], ["view-many"]):  # long-lived, threaded servers
        from galaxy_cellxgene.allocator import limit_arenas

        limit_arenas()
    if argv[:1] == ["view-many"]:  # several datasets in one session: its own parser (multi_cli.py)
        from galaxy_cellxgene.multi_cli import run_view_many

        return run_view_many(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # anndata/pandas deprecation chatter is noise in a Galaxy job log.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="anndata")
    runners = {"check": run_check, "view": run_view, "merge": run_merge}
    return runners[args.command](args)
