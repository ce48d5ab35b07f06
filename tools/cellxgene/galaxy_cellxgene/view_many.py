"""`view-many`: several datasets in one cellxgene session (see multi/).

    python -m galaxy_cellxgene view-many --dataset NAME=PATH [--dataset NAME=PATH ...]
        [--datasets-json FILE] --annotations-dir DIR --gene-sets-dir DIR [--merged-dir DIR] [--subsets-dir DIR]
        [--memory-budget-mb MB] [--unload-after MINUTES] [VIEW OPTIONS] [--port/--host/--register ...]

Outputs, one file per opened dataset, named after its safe name (multi/names.py):
`<annotations-dir>/<name>.csv`, `<gene-sets-dir>/<name>.csv`, `<merged-dir>/<name>.h5ad`; and one
file per subset asked for at Finish, `<subsets-dir>/<name>+<labels>.h5ad` (multi/subsets.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from galaxy_cellxgene.exit_codes import EXIT_INPUT
from galaxy_cellxgene.options import input_error, options_from_args, server_from_args, title_from_args
from galaxy_cellxgene.session_files import csv_name

# Read by the runtime when no --memory-budget-mb is given: an admin sets it in the job
# destination's environment. GALAXY_MEMORY_MB is what Galaxy sets when the destination
# declares the job's memory; a quarter is kept for Python, waitress and the landing page.
BUDGET_ENV = "GALAXY_CELLXGENE_MEMORY_BUDGET_MB"
GALAXY_MEMORY_ENV = "GALAXY_MEMORY_MB"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """view-many's own groups; cli.py adds the display, session and server groups."""
    g = parser.add_argument_group("datasets and outputs")
    g.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a dataset and the name it is listed under (repeat); split at the last '='",
    )
    g.add_argument(
        "--datasets-json",
        type=Path,
        metavar="FILE",
        help='JSON list of {"name": ..., "path": ...} (keeps user-chosen names away from a shell)',
    )
    g.add_argument("--annotations-dir", type=Path, required=True)
    g.add_argument("--gene-sets-dir", type=Path, required=True)
    g.add_argument("--merged-dir", type=Path, help="merged h5ad per opened dataset, written on a clean finish")
    g.add_argument(
        "--subsets-dir",
        type=Path,
        help="the subsets asked for with 'Save at Finish' in any dataset, written on a clean finish",
    )
    g.add_argument(
        "--galaxy-json",
        type=Path,
        metavar="FILE",
        help="keep Galaxy's tool-provided metadata here (galaxy.json): output elements named as the inputs",
    )
    g.add_argument("--previous-annotations-dir", type=Path, help="earlier annotations, <name>.csv per dataset")
    g.add_argument("--previous-gene-sets-dir", type=Path, help="earlier gene sets, <name>.csv per dataset")
    g.add_argument(
        "--previous-annotations-json",
        type=Path,
        metavar="FILE",
        help='earlier annotations as a JSON list of {"name": <dataset name>, "path": <CSV>} (the list tool)',
    )
    g.add_argument("--previous-gene-sets-json", type=Path, metavar="FILE", help="earlier gene sets, the same way")
    m = parser.add_argument_group("memory")
    m.add_argument(
        "--memory-budget-mb",
        type=int,
        default=None,
        metavar="MB",
        help=f"close idle datasets to stay under this estimate (default: ${BUDGET_ENV}, else 3/4 of "
        f"${GALAXY_MEMORY_ENV}, else no limit; 0: no limit)",
    )
    m.add_argument(
        "--unload-after",
        type=float,
        default=30,
        metavar="MINUTES",
        help="close a dataset nobody has used for this long (0: never); it reopens where it was left",
    )


def read_named_paths(path: Path, option: str) -> list[tuple[str, Path]]:
    """A JSON list of {"name": ..., "path": ...}: how the tool XML hands over user-named files."""
    listed = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(listed, list):
        raise ValueError(f"{option} must hold a JSON list")
    items = []
    for item in listed:
        if not isinstance(item, dict) or "name" not in item or "path" not in item:
            raise ValueError(f'each {option} item needs "name" and "path"')
        items.append((str(item["name"]), Path(str(item["path"]))))
    return items


def parse_items(args: argparse.Namespace) -> list[tuple[str, Path]]:
    items: list[tuple[str, Path]] = []
    for text in args.dataset:
        name, sep, path = text.rpartition("=")
        if not sep or not name or not path:
            raise ValueError(f"--dataset wants NAME=PATH, got {text!r}")
        items.append((name, Path(path)))
    if args.datasets_json is not None:
        items += read_named_paths(args.datasets_json, "--datasets-json")
    if not items:
        raise ValueError("no dataset given: use --dataset NAME=PATH or --datasets-json FILE")
    return items


def match_previous(slug_of: Mapping[str, str], earlier: list[tuple[str, Path]]) -> tuple[dict[str, Path], list[str]]:
    """Earlier files matched to datasets by name: a list tool's outputs keep the input's element
    identifiers, so last session's annotations list lines up with this session's datasets.
    Returns {slug: file} and the names that match no dataset."""
    matched: dict[str, Path] = {}
    unmatched: list[str] = []
    for name, path in earlier:
        if name in slug_of:
            matched[slug_of[name]] = path
        else:
            unmatched.append(name)
    return matched, unmatched


def stage_previous(matched: Mapping[str, Path], folder: Path) -> Path:
    """The folder of <slug>.csv the sessions resume from; slugs are safe names, so links stay inside."""
    folder.mkdir(parents=True, exist_ok=True)
    for slug, source in matched.items():
        link = folder / csv_name(slug)
        link.unlink(missing_ok=True)
        link.symlink_to(source.resolve())
    return folder


def previous_folders(args: argparse.Namespace, datasets: list) -> tuple[Path | None, Path | None, list[str]]:
    """--previous-*-dir as given, or folders staged from --previous-*-json; plus what to tell the user."""
    slug_of = {d.name: d.slug for d in datasets}
    folders: list[Path | None] = []
    notes: list[str] = []
    for kind, listed, folder in (
        ("annotations", args.previous_annotations_json, args.previous_annotations_dir),
        ("gene sets", args.previous_gene_sets_json, args.previous_gene_sets_dir),
    ):
        if listed is None:
            folders.append(folder)
            continue
        if folder is not None:
            raise ValueError(f"earlier {kind}: give a folder or a JSON list, not both")
        stem = f"previous-{kind.replace(' ', '-')}"
        matched, unmatched = match_previous(slug_of, read_named_paths(listed, f"--{stem}-json"))
        # A leading dot: no slug has one (safe_name strips it), so no dataset's own work folder
        # (work_dir/<slug>) can be, or hold, a staged resume folder.
        folders.append(stage_previous(matched, args.work_dir / f".{stem}"))
        notes.append(f"earlier {kind} for {len(matched)} of {len(datasets)} datasets: " + ", ".join(sorted(matched)))
        notes += [
            f"WARNING: earlier {kind} named {name!r} match no dataset of this list and are left out. "
            "Fix: pass the list an earlier run of this tool made on the same datasets (elements are matched by name)."
            for name in unmatched
        ]
    return folders[0], folders[1], notes


def memory_budget_bytes(cli_mb: int | None, env: dict[str, str]) -> int | None:
    def number(text: str | None) -> float | None:
        try:
            return float(text) if text not in (None, "") else None
        except ValueError:
            return None

    if cli_mb is not None:
        return cli_mb * 2**20 if cli_mb > 0 else None
    configured = number(env.get(BUDGET_ENV))
    if configured is not None:
        return int(configured * 2**20) if configured > 0 else None
    galaxy = number(env.get(GALAXY_MEMORY_ENV))
    if galaxy is not None and galaxy > 0:
        return int(galaxy * 0.75 * 2**20)
    return None


def run(args: argparse.Namespace) -> int:
    from galaxy_cellxgene.joblog import say
    from galaxy_cellxgene.multi.datasets import plan_datasets, quick_check
    from galaxy_cellxgene.multi.session import MultiSession
    from galaxy_cellxgene.serve import run_server
    from galaxy_cellxgene.session_files import OutputDirs
    from galaxy_cellxgene.settings import idle_timeout_seconds

    started = time.monotonic()
    try:
        items = parse_items(args)
    except (ValueError, OSError) as err:
        return input_error(str(err))

    options = options_from_args(args)
    datasets = plan_datasets(items, options, quick_check)
    for entry in datasets:
        for problem in entry.problems:
            # repr: an element identifier is user text, and a line break in it would forge log lines.
            print(f"{entry.name!r}: {problem}", file=sys.stderr)
    usable = [d for d in datasets if d.usable]
    if not usable:
        print(f"cellxgene cannot start: none of the {len(datasets)} datasets can be opened.", file=sys.stderr)
        return EXIT_INPUT
    say(
        f"{len(usable)} of {len(datasets)} datasets ready to open "
        f"({time.monotonic() - started:.2f} s): " + ", ".join(d.slug for d in usable)
    )

    try:
        previous_annotations, previous_gene_sets, notes = previous_folders(args, datasets)
    except (ValueError, OSError) as err:
        return input_error(str(err))
    for note in notes:
        if note.startswith("WARNING"):
            print(note, file=sys.stderr)
        else:
            say(note)
    dirs = OutputDirs(
        annotations=args.annotations_dir,
        gene_sets=args.gene_sets_dir,
        merged=args.merged_dir,
        work=args.work_dir,
        previous_annotations=previous_annotations,
        previous_gene_sets=previous_gene_sets,
        galaxy_json=args.galaxy_json,
        subsets=args.subsets_dir,
    )
    budget = memory_budget_bytes(args.memory_budget_mb, dict(os.environ))
    unload_after = args.unload_after * 60 if args.unload_after and args.unload_after > 0 else None
    session = MultiSession(
        datasets,
        dirs,
        options,
        title=title_from_args(args) or f"cellxgene: {len(datasets)} datasets",
        memory_budget_bytes=budget,
        unload_after=unload_after,
    ).start()
    if budget is not None:
        say(f"memory budget {budget / 2**20:.0f} MiB")
    return run_server(session, server_from_args(args), idle_timeout_seconds(options))
