"""Thin command line: `check`, `view`, `merge`, `view-many`. Everything real lives in the modules it calls."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from galaxy_cellxgene import view_many
from galaxy_cellxgene.exit_codes import EXIT_INPUT, EXIT_OUTPUT
from galaxy_cellxgene.joblog import say
from galaxy_cellxgene.options import (
    add_display_options,
    add_server_options,
    add_session_options,
    add_view_options,
    fail,
    input_error,
    options_from_args,
    server_from_args,
    setup_logging,
)
from galaxy_cellxgene.settings import ViewerOptions, idle_timeout_seconds, with_dataset_defaults

# The checks read metadata only (under a second at 500k cells); far longer means h5py is stuck.
WATCHDOG_SECONDS = 60
COMMANDS = ("check", "view", "merge", "view-many")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m galaxy_cellxgene", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="validate an h5ad and report what cellxgene will show")
    check.add_argument("input", type=Path)
    check.add_argument("--report", type=Path, help="write the Markdown report here")
    add_view_options(check)

    view = sub.add_parser("view", help="serve cellxgene on the input; saves land in the outputs")
    view.add_argument("input", type=Path)
    view.add_argument("--annotations-out", type=Path, required=True)
    view.add_argument("--gene-sets-out", type=Path, required=True)
    view.add_argument("--merged-out", type=Path, help="merged h5ad, written on a clean finish")
    view.add_argument("--subsets-out", type=Path, help="folder of the cell subsets asked for at Finish")
    add_server_options(view)
    add_view_options(view)

    merge = sub.add_parser("merge", help="merge a cellxgene annotations CSV (and gene sets) into an h5ad")
    merge.add_argument("input", type=Path)
    merge.add_argument("--annotations", type=Path)
    merge.add_argument("--gene-sets", type=Path)
    merge.add_argument("--output", type=Path, help="the annotated h5ad (needs --annotations or --gene-sets)")
    merge.add_argument("--replace-columns", action="store_true", help="replace obs columns of the same name")
    merge.add_argument("--subset-by", metavar="CATEGORY", help="write one h5ad per label of this category")
    merge.add_argument("--subset-label", action="append", default=[], metavar="LABEL", help="a label (repeatable)")
    merge.add_argument("--subset-labels-file", type=Path, help="labels, one a line (none: every label)")
    merge.add_argument("--subsets-dir", type=Path, help="where the per-label h5ad files go")

    many = sub.add_parser(
        "view-many",
        help="serve several datasets in one cellxgene session; saves land in per-dataset outputs",
        description="serve several datasets in one cellxgene session; saves land in per-dataset outputs",
    )
    view_many.add_arguments(many)
    add_server_options(many)
    # No resume group: earlier work comes per dataset (--previous-*-json/-dir), never as one file.
    add_display_options(many)
    add_session_options(many)
    return parser


def subcommand_parser(command: str) -> argparse.ArgumentParser:
    """The parser of one subcommand, as `python -m galaxy_cellxgene <command>` uses it."""
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[command]


def view_many_parser() -> argparse.ArgumentParser:
    return subcommand_parser("view-many")


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
    options = with_dataset_defaults(options, inspection.summary.default_var_names, inspection.summary.default_embedding)
    text = render(options.display_name(args.input), inspection, options)
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
    from galaxy_cellxgene.sparse_structure import SparseStructureError
    from galaxy_cellxgene.x_bounds import XTooLarge

    started = time.monotonic()
    options = options_from_args(args)
    inspection = guarded_inspect(args.input, options, thorough=False)
    for problem in inspection.warnings:
        print(str(problem), file=sys.stderr)
    if inspection.errors:
        return fail(inspection.errors)
    # An empty gene-name choice on a file indexed by gene IDs: its symbol column (gene_names.py).
    options = with_dataset_defaults(options, inspection.summary.default_var_names, inspection.summary.default_embedding)

    prepared = prepare(args.input, args.work_dir, options)
    # Before the heavy imports below: the copy's file reads and conversions release the GIL,
    # so it is built on the second core while this thread imports and loads cellxgene.
    try:
        columns = start_column_copy(prepared.path, options)
    except (XTooLarge, SparseStructureError) as err:
        return input_error(str(err))
    paths = session_paths(args, prepared.path)
    del inspection  # cell names can be tens of MiB; the server lives for hours
    first_page = serve_first_page(args, paths, options, columns is not None, prepared.reason, started)
    if first_page is None:  # the cell names are not unique: every problem, before serving anything
        return fail(guarded_inspect(args.input, options).errors)
    status = load_and_serve(args, paths, options, columns, first_page, started)
    if status == 0 and columns is not None and columns.refusal:
        return input_error(columns.refusal)  # found while the session was served: it ended it
    return status


def session_paths(args: argparse.Namespace, prepared: Path):
    from galaxy_cellxgene.session_files import Paths

    return Paths(
        source=args.input.resolve(),
        prepared=prepared,
        work_dir=args.work_dir,
        annotations_out=args.annotations_out,
        gene_sets_out=args.gene_sets_out,
        merged_out=args.merged_out,
        subsets_out=args.subsets_out,
        previous_annotations=args.previous_annotations,
        previous_gene_sets=args.previous_gene_sets,
    )


def serve_first_page(
    args: argparse.Namespace, paths, options: ViewerOptions, store_serves_genes: bool, reason: str, started: float
):
    """Listen now, with the page's first requests answered from the file while cellxgene loads
    (early_front.py); everything else is held until cellxgene's app takes over. None, without
    listening, when the cell names are not unique (cellxgene would refuse the dataset)."""
    from galaxy_cellxgene import early_front
    from galaxy_cellxgene.early_answers import EarlyAnswers
    from galaxy_cellxgene.galaxy_client import GalaxyLink
    from galaxy_cellxgene.serve import listen
    from galaxy_cellxgene.settings import FINISH_SCRIPT, page_scripts

    galaxy = GalaxyLink.from_env()
    # As dataset_config and build_session give them to cellxgene's page.
    scripts = (FINISH_SCRIPT, *options.extra_scripts, *page_scripts(galaxy.can_write))
    answers = EarlyAnswers(paths.prepared, options, paths, scripts, store_serves_genes)
    if answers.cell_names_unique() is False:
        return None
    front = early_front.EarlyFront(answers, scripts, options.first_embedding)
    say(f"dataset prepared in {time.monotonic() - started:.2f} s ({reason})")
    listening = listen(front, galaxy, server_from_args(args))
    made = early_front.warm(front)
    say(f"first page ready in {time.monotonic() - started:.2f} s ({made} answers read from the file)")
    return front, listening, galaxy


def load_and_serve(args, paths, options, columns, first_page, started: float) -> int:
    """Load cellxgene's app, hand the front's requests to it, and serve the session."""
    from galaxy_cellxgene import deferred_imports

    deferred_imports.defer()  # cellxgene's diffexp and estimate: imported when first used, not before the cells
    from galaxy_cellxgene.app import build_session
    from galaxy_cellxgene.cellxgene_internals import StartupError
    from galaxy_cellxgene.outputs import OutputNotWritable
    from galaxy_cellxgene.serve import serve_session
    from galaxy_cellxgene.validate import inspect

    front, listening, galaxy = first_page
    try:
        session = build_session(paths, options, columns, galaxy)
    except OutputNotWritable as err:
        front.fail("The viewer could not write its Galaxy outputs; the job's log says why.")
        print(
            f"ERROR: the Galaxy output {err.path} cannot be written ({err.strerror}). "
            "Fix: check the job's disk space, quota and output directory permissions, then rerun.",
            file=sys.stderr,
        )
        return EXIT_OUTPUT
    except StartupError as err:
        front.fail("cellxgene refused the dataset; the job's log says why.")
        # The quick check skipped what cellxgene checks anyway; now report every problem.
        thorough = inspect(args.input, options)
        if thorough.errors:
            return fail(thorough.errors)
        print(f"ERROR: cellxgene refused the dataset: {err}", file=sys.stderr)
        return EXIT_INPUT
    if columns is not None and columns.ready.is_set() and columns.refusal:
        front.fail("The dataset's expression matrix was refused; the job's log says why.")
        return input_error(columns.refusal)
    front.hand_over(session.app)
    say(f"cellxgene loaded in {time.monotonic() - started:.2f} s ({front.answered_early} requests answered before)")
    if columns is not None:
        session.end_when_refused(columns)
    return serve_session(session, listening, idle_timeout_seconds(options))


def run_merge(args: argparse.Namespace) -> int:
    import h5py

    from galaxy_cellxgene.input_files import merge_input_problems, not_hdf5_problem, previous_file_problems
    from galaxy_cellxgene.labels import LabelsError
    from galaxy_cellxgene.merge import merge_files

    if not h5py.is_hdf5(args.input):
        return fail([not_hdf5_problem(args.input)])
    refused = merge_input_problems(args.input)
    if args.annotations:
        refused += previous_file_problems(args.annotations, "The annotations")
    if args.gene_sets:
        refused += previous_file_problems(args.gene_sets, "The gene sets")
    if refused:
        return fail(refused)
    if bool(args.subset_by) != bool(args.subsets_dir) or not (args.output or args.subset_by):
        print("ERROR: nothing to write. Fix: give --output, or --subset-by with --subsets-dir.", file=sys.stderr)
        return EXIT_INPUT
    from galaxy_cellxgene.subset import SubsetError
    from galaxy_cellxgene.subset_matrix import MatrixError

    try:
        if args.subset_by:
            from galaxy_cellxgene.subset import run_subsets

            run_subsets(args)  # first: every label is checked before any output is written
        if args.output:
            labels, gene_sets = merge_files(
                args.input, args.output, args.annotations, args.gene_sets, overwrite=args.replace_columns
            )
            columns = list(labels.columns) if labels is not None else []
            print(
                f"merged {len(columns)} categories ({', '.join(map(str, columns)) or 'none'}) and "
                f"{len(gene_sets or {})} gene sets into {args.output}"
            )
    except (LabelsError, SubsetError, MatrixError) as err:
        print(f"ERROR: {err} Fix: {err.fix}", file=sys.stderr)
        return EXIT_INPUT
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _main(argv)
    except Exception as err:  # never a traceback: one line naming what was read, exit code of its own
        from galaxy_cellxgene.failure import report

        return report(argv[0] if argv else "?", err)


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("view", "view-many"):  # long-lived, threaded servers
        from galaxy_cellxgene.allocator import limit_arenas

        limit_arenas()
    setup_logging()
    runners = {"check": run_check, "view": run_view, "merge": run_merge, "view-many": view_many.run}
    return runners[args.command](args)
