"""The datasets of a list: what each is, read cheaply from its file, and whether it can be opened."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from galaxy_cellxgene.app import Session
from galaxy_cellxgene.columns import memory_budget_mb, storage_of
from galaxy_cellxgene.multi.names import unique_safe_names
from galaxy_cellxgene.obsm import SPATIAL_KEY, entries
from galaxy_cellxgene.settings import ViewerOptions
from galaxy_cellxgene.store_choice import choose_store, resident_bytes

# What a loaded cellxgene app costs besides its arrays (Flask app, caches, pandas frames).
APP_OVERHEAD_BYTES = 40 * 1024 * 1024
# Variable-length strings are Python objects once loaded: pointer, header and text.
STRING_BYTES = 64


@dataclass(frozen=True)
class FileFacts:
    n_obs: int
    n_vars: int
    embeddings: tuple[str, ...]
    cost_bytes: int  # estimated memory once cellxgene has loaded it


def _node_bytes(node: h5py.Dataset) -> int:
    if node.dtype.kind in ("O", "S", "U"):
        return int(node.size) * STRING_BYTES
    return int(node.size) * int(node.dtype.itemsize)


def _group_bytes(group: h5py.Group | h5py.Dataset) -> int:
    if isinstance(group, h5py.Dataset):
        return _node_bytes(group)
    total = 0

    def add(_name: str, node: object) -> None:
        nonlocal total
        if isinstance(node, h5py.Dataset):
            total += _node_bytes(node)

    group.visititems(add)
    return total


def read_facts(path: Path, layer: str | None = None, options: ViewerOptions | None = None) -> FileFacts:
    """Shape, embeddings and a memory estimate from HDF5 metadata alone (no array is read).
    X is counted as the store its session will use holds it (store_choice.resident_bytes): a
    dataset served from a disk store costs its pointers, not its matrix."""
    options = options or ViewerOptions()
    with h5py.File(path, "r") as f:
        matrix = f[f"layers/{layer}"] if layer and f"layers/{layer}" in f else f["X"]
        storage = storage_of(matrix)
        n_obs, n_vars = storage.shape
        # obsm.entries: pre-0.7 files keep obsm as one structured array; tissue coordinates are drawn too.
        embeddings = tuple(e.key for e in entries(f) if e.key.startswith("X_") or e.key == SPATIAL_KEY)
        choice = choose_store(storage, options.x_store, options.backed, memory_budget_mb(options))
        cost = resident_bytes(storage, choice) + APP_OVERHEAD_BYTES
        for key in ("obs", "var", "obsm"):
            if key in f:
                cost += _group_bytes(f[key])
    return FileFacts(n_obs, n_vars, embeddings, cost)


@dataclass
class Dataset:
    name: str  # the user's element identifier, shown as is (escaped)
    slug: str  # safe: URL segment and output file stem
    source: Path
    facts: FileFacts | None
    problems: list[str] = field(default_factory=list)  # errors: the dataset cannot be opened
    session: Session | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while loading/unloading
    active: int = 0  # requests being answered (guarded by the manager lock)
    last_used: float = 0.0
    loads: int = 0
    unloads: int = 0
    load_seconds: float | None = None
    load_error: str | None = None
    merged_written: bool = False
    # Save counters live in each session; these carry them across unloads for the job log.
    past_label_saves: int = 0
    past_gene_set_saves: int = 0
    # "Save at Finish" subsets asked for in any load of it (subset_routes.Request; multi/subsets.py).
    subsets_at_finish: list = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.facts is not None and not self.problems

    @property
    def cost(self) -> int:
        return self.facts.cost_bytes if self.facts else 0


class DatasetUnavailable(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def plan_datasets(
    items: list[tuple[str, Path]],
    options: ViewerOptions,
    check: Callable[[Path, ViewerOptions], list[str]] | None = None,
) -> list[Dataset]:
    """One Dataset per (name, path), with safe unique slugs, file facts and blocking problems."""
    slugs = unique_safe_names(name for name, _ in items)
    datasets = []
    for (name, path), slug in zip(items, slugs, strict=True):
        problems = check(path, options) if check else []
        facts = None
        if not problems:
            try:
                facts = read_facts(path, options.layer, options)
            except (OSError, KeyError, ValueError) as err:
                problems = [f"ERROR: it is not a readable h5ad file ({err})."]
        datasets.append(Dataset(name=name, slug=slug, source=Path(path).resolve(), facts=facts, problems=problems))
    return datasets


def quick_check(path: Path, options: ViewerOptions) -> list[str]:
    """validate.inspect's quick mode, the same `view` runs before it starts."""
    from galaxy_cellxgene.validate import inspect

    try:
        inspection = inspect(path, options, thorough=False)
    except Exception as err:  # one dataset's fault (or the reader's) must not end the session
        from galaxy_cellxgene.failure import one_line

        return [one_line("view-many", err)]
    return [str(p) for p in inspection.errors]
