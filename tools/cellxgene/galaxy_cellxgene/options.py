"""The command line's options, in groups every subcommand picks from, and what they become.

Groups (as cellxgene's own `launch.py` groups its options): *display* (what cellxgene shows),
*session* (memory, idle timeout, differential expression bounds), *resume* (one earlier
annotations/gene-sets file: `check` and `view` only) and *server* (where to listen and register).
`options_from_args` turns a parsed command line into the pure `ViewerOptions` (settings.py);
`server_from_args` into a `ServerOptions`. The job log's setup lives here too, so every
subcommand (cli.py, view_many.py) imports from this module and none from another; the exit
codes are exit_codes.py's.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from galaxy_cellxgene.exit_codes import EXIT_INPUT
from galaxy_cellxgene.settings import ViewerOptions

# The option defaults are ViewerOptions' own (settings.py): the command line repeats none of them.
DEFAULTS = ViewerOptions()


def add_display_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("what cellxgene shows")
    g.add_argument("--title", help="viewer title (default: the input's name)")
    g.add_argument("--title-file", type=Path, help="read the title from this file (keeps any text away from a shell)")
    g.add_argument("--var-names", metavar="COL", help="var column holding gene symbols")
    g.add_argument("--make-var-names-unique", action="store_true", help="append -1, -2 to duplicate gene names")
    g.add_argument("--obs-names", metavar="COL", help="obs column holding cell names")
    g.add_argument("--embedding", action="append", default=[], metavar="NAME", help="embedding to show (repeat)")
    g.add_argument("--layer", metavar="NAME", help="show this layer instead of X")
    g.add_argument("--disable-diffexp", action="store_true")
    g.add_argument("--disable-annotations", action="store_true")
    g.add_argument("--disable-gene-sets-save", action="store_true")
    g.add_argument("--disable-custom-colors", action="store_true")
    g.add_argument("--max-category-items", type=int, default=DEFAULTS.max_category_items, metavar="N")
    g.add_argument("--diffexp-lfc-cutoff", type=float, default=DEFAULTS.diffexp_lfc_cutoff, metavar="F")


def add_resume_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("earlier work (one dataset)")
    g.add_argument("--previous-annotations", type=Path, metavar="CSV", help="cell labels to resume from")
    g.add_argument("--previous-gene-sets", type=Path, metavar="CSV", help="gene sets to resume from")


def add_session_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("memory, time and differential expression")
    g.add_argument("--backed", action="store_true", help="read X from disk on demand (less memory, slower)")
    g.add_argument(
        "--x-store",
        choices=["auto", "memory", "disk"],
        default=DEFAULTS.x_store,
        help="where gene requests read X: a column copy in memory, or on disk (auto: by the job's memory)",
    )
    g.add_argument(
        "--memory-mb",
        type=int,
        default=DEFAULTS.memory_mb,
        metavar="MB",
        help="the job's memory, for --x-store auto (0: $GALAXY_MEMORY_MB, set by Galaxy)",
    )
    g.add_argument(
        "--dataset-uuid",
        default=DEFAULTS.dataset_uuid,
        metavar="UUID",
        help="Galaxy's UUID of the input: keys the shared column store cache ($GALAXY_CELLXGENE_STORE_CACHE)",
    )
    g.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULTS.idle_timeout_minutes,
        metavar="MINUTES",
        help="finish after idling (0: never)",
    )
    g.add_argument("--x-distribution", choices=["auto", "normal", "count"], default=DEFAULTS.x_distribution)
    g.add_argument(
        "--diffexp-max-cells",
        type=int,
        default=DEFAULTS.diffexp_max_cells,
        metavar="N",
        help="most cells one differential expression may compare (0: derived from --diffexp-memory-mb)",
    )
    g.add_argument(
        "--diffexp-memory-mb",
        type=int,
        default=DEFAULTS.diffexp_memory_mb,
        metavar="MB",
        help="memory one differential expression may use; sets the cell limit from the gene count",
    )
    g.add_argument(
        "--diffexp-concurrency",
        type=int,
        default=DEFAULTS.diffexp_concurrency,
        metavar="N",
        help="differential expression computations at once; more wait in line, then get 503",
    )


def add_server_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("server")
    g.add_argument("--port", type=int, default=8888, help="declared port (the tool XML's entry point)")
    g.add_argument("--host", help="listen address (default: 0.0.0.0 in a container, else 127.0.0.1)")
    g.add_argument("--register", choices=["auto", "always", "never"], default="auto")
    g.add_argument("--runtime-json", type=Path, default=Path("..") / "container_runtime.json")
    g.add_argument("--work-dir", type=Path, default=Path("cellxgene-work"))
    g.add_argument("--threads", type=int, default=8)


def add_view_options(parser: argparse.ArgumentParser) -> None:
    """VIEW OPTIONS (docs/architecture.md): what `check` and `view` share."""
    add_display_options(parser)
    add_resume_options(parser)
    add_session_options(parser)


def title_from_args(args: argparse.Namespace) -> str | None:
    if args.title_file is not None:
        # One line, bounded: a title is a label, and cellxgene shows it in the page header.
        text = args.title_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return text[0].strip()[:200] if text else None
    return args.title or None


def _path_text(args: argparse.Namespace, name: str) -> str | None:
    value = getattr(args, name, None)  # the resume group is not every subcommand's
    return str(value) if value else None


def options_from_args(args: argparse.Namespace) -> ViewerOptions:
    return ViewerOptions(
        title=title_from_args(args),
        var_names=args.var_names or None,
        make_var_names_unique=args.make_var_names_unique,
        obs_names=args.obs_names or None,
        embeddings=tuple(e for e in args.embedding if e),
        layer=args.layer or None,
        previous_annotations=_path_text(args, "previous_annotations"),
        previous_gene_sets=_path_text(args, "previous_gene_sets"),
        diffexp=not args.disable_diffexp,
        annotations=not args.disable_annotations,
        gene_sets_save=not args.disable_gene_sets_save,
        custom_colors=not args.disable_custom_colors,
        max_category_items=args.max_category_items,
        diffexp_lfc_cutoff=args.diffexp_lfc_cutoff,
        backed=args.backed,
        x_store=args.x_store,
        memory_mb=args.memory_mb,
        dataset_uuid=args.dataset_uuid,
        idle_timeout_minutes=args.idle_timeout,
        x_distribution=args.x_distribution,
        diffexp_max_cells=args.diffexp_max_cells,
        diffexp_memory_mb=args.diffexp_memory_mb,
        diffexp_concurrency=args.diffexp_concurrency,
    )


@dataclass(frozen=True)
class ServerOptions:
    port: int  # the declared port (the tool XML's entry point)
    host: str | None
    register: str  # auto | always | never
    runtime_json: Path
    threads: int


def server_from_args(args: argparse.Namespace) -> ServerOptions:
    return ServerOptions(args.port, args.host, args.register, args.runtime_json, args.threads)


def setup_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # anndata/pandas deprecation chatter is noise in a Galaxy job log.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="anndata")


def fail(problems: list) -> int:
    """Input problems, one line each (what is wrong, then the fix), and exit code 2."""
    for problem in problems:
        print(str(problem), file=sys.stderr)
    print(f"cellxgene cannot start: {len(problems)} problem(s) above.", file=sys.stderr)
    return EXIT_INPUT


def input_error(message: str) -> int:
    print(f"ERROR: {message}", file=sys.stderr)
    return EXIT_INPUT
