"""The inputs (a dataset and what its cases need) and the contenders' command lines."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import procs
from bench.common import CELLXGENE, PY, RECIPE, REPO, TOOL_DIR


@dataclass
class Dataset:
    path: Path
    n_cells: int
    genes: list[str]  # var index values
    unique_symbols: list[str]  # gene_symbols values that are already unique (same after make-unique)
    layer: str | None = None  # the layer the `layer` case shows
    name: str | None = None  # "demo" for the repository's demo dataset

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return f"{self.n_cells // 1000}k" if self.n_cells % 1000 == 0 else str(self.n_cells)


DEMO = REPO / "test-data" / "pbmc_demo.h5ad"


def load_dataset(path: Path, name: str | None = None) -> Dataset:
    import anndata
    import h5py

    with h5py.File(path, "r") as f:
        var = anndata.io.read_elem(f["var"])
        n_cells = int(f["obs"][f["obs"].attrs["_index"]].shape[0])
        layers = sorted(f["layers"]) if "layers" in f else []
    symbols = var["gene_symbols"].astype(str) if "gene_symbols" in var else None
    unique = [] if symbols is None else list(symbols[~symbols.duplicated(keep=False)])
    # Read it once so every contender starts from a warm page cache.
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass
    layer = "counts" if "counts" in layers else (layers[0] if layers else None)
    return Dataset(path, n_cells, [str(g) for g in var.index], unique, layer, name)


@dataclass
class Case:
    name: str  # plain | unique | layer
    runtime_args: list[str]
    recipe_args: list[str]
    gene: Callable[[Dataset], str]


CASES = {
    "plain": Case("plain", [], [], lambda d: d.genes[len(d.genes) // 3]),
    "unique": Case(
        "unique",
        ["--var-names", "gene_symbols", "--make-var-names-unique"],
        ["--var-name", "gene_symbols", "--make-unique"],
        lambda d: d.unique_symbols[len(d.unique_symbols) // 3],
    ),
    "layer": Case("layer", ["--layer", "{layer}"], ["--layer", "{layer}"], lambda d: d.genes[len(d.genes) // 3]),
}


def plain_launch(ds: Dataset, run_dir: Path, extra: Sequence[str] = ()) -> procs.Launch:
    return procs.Launch("plain", [CELLXGENE, "--no-upgrade-check", "launch", str(ds.path), "--port", "{port}", *extra])


def recipe_launch(ds: Dataset, run_dir: Path, case: Case, extra: Sequence[str] = ()) -> procs.Launch:
    # The 1.1.1 tool works on a copy named after the dataset in /tmp (its `fancy_name`).
    fancy = Path("/tmp") / f"galaxy_cellxgene_bench_{ds.path.stem}_{os.getpid()}.h5ad"
    pre: list[Sequence[str]] = []
    if case.recipe_args:
        pre.append([PY, RECIPE, str(ds.path), str(fancy), *(a.format(layer=ds.layer) for a in case.recipe_args)])
    else:
        pre.append(["cp", str(ds.path), str(fancy)])
    pre.append(["mkdir", "-p", "annotation_files"])
    server = [CELLXGENE, "--no-upgrade-check", "launch", "--port", "{port}"]
    server += ["--user-generated-data-dir", "annotation_files", *extra, str(fancy)]
    return procs.Launch("recipe-1.1.1", server, pre, cleanup=[fancy])


def runtime_launch(
    ds: Dataset,
    run_dir: Path,
    case: Case | None,
    extra: Sequence[str] = (),
    name: str = "runtime",
    root: Path = TOOL_DIR,
) -> procs.Launch:
    """`python -m galaxy_cellxgene view` from the package under `root` (a variant: a patched copy)."""
    server = [PY, "-m", "galaxy_cellxgene", "view", str(ds.path)]
    server += ["--annotations-out", str(run_dir / "annotations.csv")]
    server += ["--gene-sets-out", str(run_dir / "gene_sets.csv")]
    server += ["--port", "{port}", "--register", "never", "--idle-timeout", "0"]
    server += ["--work-dir", str(run_dir / "work")]
    server += [*(a.format(layer=ds.layer) for a in (case.runtime_args if case else [])), *extra]
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return procs.Launch(name, server, env={"PYTHONPATH": path})


Maker = tuple[str, Callable[[Path], procs.Launch]]


def runtime_makers(ds: Dataset, runtimes: dict[str, Path], extra: Sequence[str] = ()) -> list[Maker]:
    """One launch maker per runtime under test (this checkout's and each --variant), no case arguments."""
    return [(rt, lambda d, n=rt, r=root: runtime_launch(ds, d, None, extra, n, r)) for rt, root in runtimes.items()]
