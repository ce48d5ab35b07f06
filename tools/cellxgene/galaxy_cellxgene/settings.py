"""Pure mapping from the tool's parameters to cellxgene 1.3.0 configuration.

Nothing here touches files or imports cellxgene, so every rule is a one-line unit test.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

Distribution = Literal["normal", "count"]  # cellxgene's X distribution; distribution.py measures it
DistributionChoice = Literal["auto", Distribution]  # the user's choice; auto: measured
XStore = Literal["auto", "memory", "disk"]

# Served by our own blueprint; relative, so the page finds them under any proxy prefix.
FINISH_SCRIPT = "galaxy/static/finish.js"
EXPORT_SCRIPT = "galaxy/static/export.js"
SUBSET_SCRIPT = "galaxy/static/subset.js"


def page_scripts(can_write: bool) -> tuple[str, ...]:
    """The scripts the page loads beside cellxgene's and finish.js: export only when the session
    can write to the history. Spelled once for app.build_session and the early front."""
    return (*((EXPORT_SCRIPT,) if can_write else ()), SUBSET_SCRIPT)


@dataclass(frozen=True)
class ViewerOptions:
    """What the user chose in the tool form (or on the command line)."""

    title: str | None = None
    var_names: str | None = None
    make_var_names_unique: bool = False
    obs_names: str | None = None
    embeddings: tuple[str, ...] = ()
    layer: str | None = None
    previous_annotations: str | None = None
    previous_gene_sets: str | None = None
    diffexp: bool = True
    annotations: bool = True
    gene_sets_save: bool = True
    custom_colors: bool = True
    max_category_items: int = 1000
    diffexp_lfc_cutoff: float = 0.01
    backed: bool = False
    x_store: XStore = "auto"  # where gene requests are read from (store_choice.py); auto: by memory_mb
    memory_mb: int = 0  # the job's memory; 0: GALAXY_MEMORY_MB, else unknown
    dataset_uuid: str = ""  # Galaxy's UUID of the input: the key of the shared store cache (store_cache.py)
    idle_timeout_minutes: float = 0
    x_distribution: DistributionChoice = "auto"
    # One user's differential expression must not exhaust the job's memory or cores.
    diffexp_max_cells: int = 0  # 0: derived from diffexp_memory_mb and the gene count
    diffexp_memory_mb: int = 4096
    diffexp_concurrency: int = 1
    extra_scripts: tuple[str, ...] = field(default=())
    # The embedding the page opens on (page_fixes.py): the first one chosen, else the dataset's
    # uns['default_embedding'] (CELLxGENE Discover); empty: cellxgene's own rule (umap, tsne, pca).
    first_embedding: str = ""

    def display_name(self, source: Path) -> str:
        """The dataset's name wherever the viewer shows or sends it: the title, else the file's name."""
        return self.title or source.name


# The tool form's explicit "gene names: the var index" choice, beside the var columns (macros.xml).
INDEX_CHOICE = "__index__"


def with_dataset_defaults(
    options: ViewerOptions, default_var_names: str | None, default_embedding: str = ""
) -> ViewerOptions:
    """The options the viewer runs with: an empty gene-name choice takes the dataset's default
    (gene_names.py), the explicit index choice means the index, anything else is kept; the page
    opens on the first embedding chosen, else on the dataset's default one."""
    chosen = embedding_names(options.embeddings)
    first = chosen[0] if chosen else default_embedding
    if options.var_names == INDEX_CHOICE:
        return replace(options, var_names=None, first_embedding=first)
    if not options.var_names and default_var_names:
        return replace(options, var_names=default_var_names, first_embedding=first)
    return replace(options, first_embedding=first)


def embedding_name(name: str) -> str:
    """cellxgene wants `umap` for obsm `X_umap`; Galaxy's metadata lists `X_umap`."""
    name = name.strip()
    return name[2:] if name.startswith("X_") else name


def embedding_names(names: tuple[str, ...] | list[str]) -> list[str]:
    seen: list[str] = []
    for name in names:
        short = embedding_name(name)
        if short and short not in seen:
            seen.append(short)
    return seen


def needs_new_var_index(options: ViewerOptions) -> bool:
    """cellxgene refuses non-unique names, so making them unique means a new var index."""
    return options.make_var_names_unique


def var_names_for_cellxgene(options: ViewerOptions) -> str | None:
    """After a unique index was written, cellxgene must use that index, not the column."""
    if needs_new_var_index(options):
        return None
    return options.var_names or None


def must_rewrite_metadata(options: ViewerOptions) -> bool:
    """True when cellxgene cannot read the dataset as it is, whatever its contents."""
    return needs_new_var_index(options) or bool(options.layer)


def distribution(options: ViewerOptions, known: Distribution | None) -> DistributionChoice:
    """An explicit choice wins; else what the runtime measured (see distribution.py)."""
    if options.x_distribution != "auto":
        return options.x_distribution
    return known or "auto"


def server_config(
    options: ViewerOptions, datapath: str, secret_key: str, load_backed: bool | None = None
) -> dict[str, Any]:
    """`load_backed` lets the runtime open X on disk while it builds its own copy (columns.py)."""
    return {
        "app__verbose": False,
        "app__debug": False,
        "app__open_browser": False,
        "app__flask_secret_key": secret_key,
        "single_dataset__datapath": datapath,
        "single_dataset__title": options.title or None,
        "single_dataset__obs_names": options.obs_names or None,
        "single_dataset__var_names": var_names_for_cellxgene(options),
        "adaptor__anndata_adaptor__backed": options.backed if load_backed is None else load_backed,
    }


def dataset_config(
    options: ViewerOptions,
    annotations_file: str,
    gene_sets_file: str,
    known_distribution: Distribution | None = None,
) -> dict[str, Any]:
    scripts = [FINISH_SCRIPT, *options.extra_scripts]
    return {
        "app__scripts": scripts,
        "user_annotations__enable": options.annotations,
        "user_annotations__local_file_csv__file": annotations_file,
        "user_annotations__local_file_csv__gene_sets_file": gene_sets_file,
        "user_annotations__gene_sets__readonly": not options.gene_sets_save,
        "presentation__max_categories": int(options.max_category_items),
        "presentation__custom_colors": options.custom_colors,
        "embeddings__names": embedding_names(options.embeddings),
        "diffexp__enable": options.diffexp,
        "diffexp__lfc_cutoff": float(options.diffexp_lfc_cutoff),
        "X_approximate_distribution": distribution(options, known_distribution),
    }


# cellxgene's diffexp densifies each group: (cells x genes) float64, twice (X - mean, squared).
DIFFEXP_BYTES_PER_CELL_GENE = 16


def diffexp_cell_limit(options: ViewerOptions, n_genes: int) -> int:
    """Most cells one differential expression may compare, so it fits the memory budget."""
    if options.diffexp_max_cells > 0:
        return int(options.diffexp_max_cells)
    budget = int(options.diffexp_memory_mb) * 1024 * 1024
    return max(1, budget // (max(1, n_genes) * DIFFEXP_BYTES_PER_CELL_GENE))


def idle_timeout_seconds(options: ViewerOptions) -> float | None:
    minutes = float(options.idle_timeout_minutes or 0)
    return minutes * 60 if minutes > 0 else None
