#!/usr/bin/env python
"""Write the synthetic h5ad datasets the benchmarks run on (issue 6).

Each dataset is deterministic for a given size and seed: 2,000 genes, a CSR float32 X of
log-normalised values (about 5% of entries non-zero, per-gene density varies like real data),
a `counts` layer with the raw integer counts (float32), `X_umap` (clustered) and `X_pca`,
categorical obs columns, and a `gene_symbols` var column that has duplicates (so the
make-unique path has real work to do). A `_nolayers` twin of each size carries the same
data without the counts layer, for the memory comparison.

The CSR matrix is built chunk by chunk straight from its index arrays, so memory stays at
roughly the size of the arrays that are written (about 1 GiB at 500,000 cells).

Atlas shapes (issue 17): `--atlas 100000,1000000` writes `atlas_<k>.h5ad` with 20,000 genes,
about 4% of entries non-zero (per-gene detection rates log-normally spread: a few genes in
most cells, most genes in under 1%), a log-normalised CSR X, a `counts` layer and a `raw`
copy (raw.X = the log-normalised values, as scanpy's `adata.raw = adata` leaves it). These
files are streamed to disk row block by row block with h5py in anndata's on-disk encoding,
so generating 1,000,000 cells (about 19 GB) needs a few hundred MiB, not the matrix.

Usage:
    .venv/bin/python scripts/data/make_bench_data.py [--sizes 10000,100000,500000] [--out bench-data]
    .venv/bin/python scripts/data/make_bench_data.py --sizes '' --atlas 100000,1000000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
from scipy import sparse

N_GENES = 2000
MEAN_DENSITY = 0.05
N_PCS = 50
# Rows per generation chunk: bounds the temporary dense mask at CHUNK x N_GENES bytes.
CHUNK = 20_000
CELL_TYPES = [f"type_{i:02d}" for i in range(12)]
SAMPLES = [f"sample_{i}" for i in range(8)]
N_CLUSTERS = 25
DUPLICATE_FRACTION = 0.05
DEFAULT_SIZES = (10_000, 100_000, 500_000)


def dataset_name(n_cells: int, layers: bool = True) -> str:
    """File name used by both this script and scripts/benchmark.py."""
    k = f"{n_cells // 1000}k" if n_cells % 1000 == 0 else str(n_cells)
    return f"synth_{k}.h5ad" if layers else f"synth_{k}_nolayers.h5ad"


def gene_table(rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """var table plus per-gene detection probability and mean count."""
    # Log-normal spread gives a few very common genes and many rare ones, as in real data.
    raw = rng.lognormal(mean=0.0, sigma=1.0, size=N_GENES)
    density = np.clip(raw / raw.mean() * MEAN_DENSITY, 0.0005, 0.9).astype(np.float32)
    mean_count = (1.0 + 4.0 * density / density.max()).astype(np.float64)

    gene_ids = [f"ENSG{i:011d}" for i in range(N_GENES)]
    symbols = np.array([f"GENE{i}" for i in range(N_GENES)], dtype=object)
    n_dup = int(N_GENES * DUPLICATE_FRACTION)
    # Later genes reuse earlier symbols: what annotation pipelines produce for paralogues/aliases.
    dup_targets = rng.choice(N_GENES // 2, size=n_dup, replace=False)
    dup_slots = rng.choice(np.arange(N_GENES // 2, N_GENES), size=n_dup, replace=False)
    symbols[dup_slots] = symbols[dup_targets]
    var = pd.DataFrame(
        {
            "gene_symbols": symbols,
            "highly_variable": rng.random(N_GENES) < 0.1,
            "mean_expression": density * mean_count.astype(np.float32),
        },
        index=pd.Index(gene_ids, name="gene_ids"),
    )
    return var, density, mean_count


@dataclass
class RowBlock:
    """Rows start..stop of a generated matrix, as CSR pieces (columns sorted within each row)."""

    start: int
    stop: int
    cols: np.ndarray  # int32 column of each stored value, row by row
    counts: np.ndarray  # float32 raw counts
    x_vals: np.ndarray  # float32 library-size normalised, log1p: what X holds in an analysed h5ad
    row_len: np.ndarray  # stored values per row
    row_sum: np.ndarray  # total counts per row


def row_blocks(
    rng: np.random.Generator,
    n_cells: int,
    rows_per_block: int,
    density: np.ndarray,
    mean_count: np.ndarray,
    depth_sigma: float | None = None,
) -> Iterator[RowBlock]:
    """Generate the matrix in blocks of rows, bounding the temporary dense draw at
    rows_per_block x n_genes float32. depth_sigma: each cell's own log-normal depth factor
    (deeper cells detect more genes, so row totals vary like real libraries)."""
    for start in range(0, n_cells, rows_per_block):
        stop = min(start + rows_per_block, n_cells)
        depth = None if depth_sigma is None else rng.lognormal(0.0, depth_sigma, size=(stop - start, 1))
        draw = rng.random((stop - start, len(density)), dtype=np.float32)
        if depth is not None:
            draw /= depth.astype(np.float32)
        mask = draw < density[None, :]
        del draw
        # nonzero walks row-major, so columns come out sorted within each row: canonical CSR.
        rows, cols = np.nonzero(mask)
        del mask
        counts = (1 + rng.poisson(mean_count[cols])).astype(np.float32)
        row_len = np.bincount(rows, minlength=stop - start)
        row_sum = np.bincount(rows, weights=counts, minlength=stop - start)
        x_vals = np.log1p(counts / row_sum[rows] * 1e4).astype(np.float32)
        yield RowBlock(start, stop, cols.astype(np.int32), counts, x_vals, row_len, row_sum)


def build_matrices(
    n_cells: int, rng: np.random.Generator, density: np.ndarray, mean_count: np.ndarray
) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """(X log-normalised, counts) as CSR float32 sharing one sparsity pattern."""
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    idx_chunks: list[np.ndarray] = []
    cnt_chunks: list[np.ndarray] = []
    x_chunks: list[np.ndarray] = []
    for block in row_blocks(rng, n_cells, CHUNK, density, mean_count):
        indptr[block.start + 1 : block.stop + 1] = indptr[block.start] + np.cumsum(block.row_len)
        idx_chunks.append(block.cols)
        cnt_chunks.append(block.counts)
        x_chunks.append(block.x_vals)
    indices = np.concatenate(idx_chunks)
    del idx_chunks
    counts_all = np.concatenate(cnt_chunks)
    del cnt_chunks
    x_all = np.concatenate(x_chunks)
    del x_chunks
    if indptr[-1] < np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)

    shape = (n_cells, N_GENES)
    counts_m = sparse.csr_matrix((counts_all, indices, indptr), shape=shape)
    x_m = sparse.csr_matrix((x_all, indices.copy(), indptr.copy()), shape=shape)
    return x_m, counts_m


def clustered_embeddings(rng: np.random.Generator, n_cells: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each cell's cluster, and X_umap / X_pca with the clusters apart (the first two PCs follow them)."""
    cluster = rng.integers(0, N_CLUSTERS, size=n_cells)
    centers = rng.normal(0.0, 10.0, size=(N_CLUSTERS, 2)).astype(np.float32)
    umap = centers[cluster] + rng.normal(0.0, 1.0, size=(n_cells, 2)).astype(np.float32)
    pca = rng.normal(0.0, 1.0, size=(n_cells, N_PCS)).astype(np.float32)
    pca[:, :2] += centers[cluster] / 3.0
    return cluster, {"X_umap": umap, "X_pca": pca}


def cluster_columns(rng: np.random.Generator, cluster: np.ndarray) -> dict[str, pd.Categorical]:
    """obs's cell type and Leiden cluster (both follow the clusters) and a random sample of origin."""
    return {
        "cell_type": pd.Categorical.from_codes(cluster % len(CELL_TYPES), CELL_TYPES),
        "sample": pd.Categorical.from_codes(rng.integers(0, len(SAMPLES), len(cluster)), SAMPLES),
        "leiden": pd.Categorical.from_codes(cluster, [str(i) for i in range(N_CLUSTERS)]),
    }


def obs_and_embeddings(
    n_cells: int, rng: np.random.Generator, x: sparse.csr_matrix, counts: sparse.csr_matrix
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    cluster, embeddings = clustered_embeddings(rng, n_cells)

    obs = pd.DataFrame(
        {
            **cluster_columns(rng, cluster),
            "batch": pd.Categorical.from_codes(rng.integers(0, 3, n_cells), ["a", "b", "c"]),
            "n_counts": np.asarray(counts.sum(axis=1)).ravel().astype(np.float32),
            "n_genes": np.diff(x.indptr).astype(np.int32),
            "pct_mito": rng.uniform(0.0, 20.0, n_cells).astype(np.float32),
        },
        index=pd.Index([f"cell_{i:07d}" for i in range(n_cells)], name="cell_ids"),
    )
    return obs, embeddings


def make_dataset(n_cells: int, out_dir: Path, seed: int, nolayers: bool, force: bool) -> list[Path]:
    with_layer = out_dir / dataset_name(n_cells, layers=True)
    without = out_dir / dataset_name(n_cells, layers=False)
    wanted = [with_layer] + ([without] if nolayers else [])
    if not force and all(p.exists() for p in wanted):
        print(f"[make_bench_data] {n_cells} cells: up to date", file=sys.stderr)
        return wanted

    t0 = time.perf_counter()
    # One generator per size, seeded from (seed, size): each file is reproducible on its own.
    rng = np.random.default_rng([seed, n_cells])
    var, density, mean_count = gene_table(rng)
    x, counts = build_matrices(n_cells, rng, density, mean_count)
    obs, obsm = obs_and_embeddings(n_cells, rng, x, counts)
    adata = anndata.AnnData(X=x, obs=obs, var=var, obsm=obsm, layers={"counts": counts})
    adata.uns["bench"] = {"seed": seed, "n_cells": n_cells, "generator": "scripts/data/make_bench_data.py"}

    for path, keep_layer in ((with_layer, True), (without, False)):
        if path not in wanted:
            continue
        if not keep_layer:
            del adata.layers["counts"]
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        adata.write_h5ad(tmp)
        # Rename last so an interrupted run never leaves a truncated dataset that looks complete.
        os.replace(tmp, path)
        size_mib = path.stat().st_size / 2**20
        print(f"[make_bench_data] wrote {path} ({size_mib:.0f} MiB)", file=sys.stderr)
    print(
        f"[make_bench_data] {n_cells} cells, nnz={x.nnz} ({x.nnz / (n_cells * N_GENES):.3%}) "
        f"in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    return wanted


ATLAS_GENES = 20_000
ATLAS_DENSITY = 0.04
ATLAS_ROWS = 4_000  # rows generated at once: a 4,000 x 20,000 float32 draw is 320 MB
ATLAS_H5_CHUNK = 1 << 18  # elements per HDF5 chunk of the growing data/indices datasets


def atlas_name(n_cells: int) -> str:
    k = f"{n_cells // 1_000_000}m" if n_cells % 1_000_000 == 0 else f"{n_cells // 1000}k"
    return f"atlas_{k}.h5ad"


def _csr_group(parent: h5py.Group, name: str, shape: tuple[int, int]) -> h5py.Group:
    group = parent.create_group(name)
    group.attrs["encoding-type"] = "csr_matrix"
    group.attrs["encoding-version"] = "0.1.0"
    group.attrs["shape"] = np.array(shape, dtype=np.int64)
    for field, dtype in (("data", np.float32), ("indices", np.int32)):
        group.create_dataset(field, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(ATLAS_H5_CHUNK,))
    group.create_dataset("indptr", shape=(shape[0] + 1,), dtype=np.int64)
    return group


def _append(group: h5py.Group, field: str, values: np.ndarray) -> None:
    ds = group[field]
    at = ds.shape[0]
    ds.resize((at + len(values),))
    ds[at:] = values


def atlas_genes(rng: np.random.Generator, n_genes: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """var table, per-gene detection rate (log-normal, mean ATLAS_DENSITY) and mean count."""
    raw = rng.lognormal(mean=0.0, sigma=1.5, size=n_genes)
    density = np.clip(raw / raw.mean() * ATLAS_DENSITY, 2e-5, 0.95).astype(np.float32)
    mean_count = (0.5 + 6.0 * density / density.max()).astype(np.float64)
    symbols = np.array([f"GENE{i}" for i in range(n_genes)], dtype=object)
    var = pd.DataFrame(
        {
            "gene_symbols": symbols,
            "highly_variable": rng.random(n_genes) < 0.1,
            "detection_rate": density,
        },
        index=pd.Index([f"ENSG{i:011d}" for i in range(n_genes)], name="gene_ids"),
    )
    return var, density, mean_count


def _write_atlas_matrices(
    f: h5py.File, rng: np.random.Generator, shape: tuple[int, int], density: np.ndarray, mean_count: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """X, layers/counts and raw/X written block by block; per cell: total counts, genes detected; nnz."""
    n_cells = shape[0]
    n_counts = np.zeros(n_cells, dtype=np.float32)
    n_genes_per_cell = np.zeros(n_cells, dtype=np.int32)
    x = _csr_group(f, "X", shape)
    counts_group = _csr_group(f.create_group("layers"), "counts", shape)
    f["layers"].attrs["encoding-type"] = "dict"
    f["layers"].attrs["encoding-version"] = "0.1.0"
    raw = f.create_group("raw")
    raw.attrs["encoding-type"] = "raw"
    raw.attrs["encoding-version"] = "0.1.0"
    raw_x = _csr_group(raw, "X", shape)
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    for block in row_blocks(rng, n_cells, ATLAS_ROWS, density, mean_count, depth_sigma=0.4):
        start, stop = block.start, block.stop
        indptr[start + 1 : stop + 1] = indptr[start] + np.cumsum(block.row_len)
        for group, values in ((x, block.x_vals), (counts_group, block.counts), (raw_x, block.x_vals)):
            _append(group, "data", values)
            _append(group, "indices", block.cols)
        n_counts[start:stop] = block.row_sum
        n_genes_per_cell[start:stop] = block.row_len
    for group in (x, counts_group, raw_x):
        group["indptr"][...] = indptr
    return n_counts, n_genes_per_cell, int(indptr[-1])


def make_atlas(n_cells: int, out_dir: Path, seed: int, force: bool, n_genes: int = ATLAS_GENES) -> Path:
    """Stream an atlas-shaped h5ad to disk in bounded memory (see the module docstring)."""
    from anndata.io import write_elem

    path = out_dir / atlas_name(n_cells)
    if path.exists() and not force:
        print(f"[make_bench_data] {path.name}: up to date", file=sys.stderr)
        return path
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, n_cells, n_genes])
    var, density, mean_count = atlas_genes(rng, n_genes)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with h5py.File(tmp, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        n_counts, n_genes_per_cell, nnz = _write_atlas_matrices(f, rng, (n_cells, n_genes), density, mean_count)
        obs, obsm = _atlas_obs(rng, n_cells, n_counts, n_genes_per_cell)
        write_elem(f, "obs", obs)
        write_elem(f, "var", var)
        write_elem(f["raw"], "var", var)
        write_elem(f, "obsm", obsm)
        for name in ("varm", "obsp", "varp"):
            write_elem(f, name, {})
        write_elem(f, "uns", {"bench": {"seed": seed, "n_cells": n_cells, "generator": "make_bench_data.py"}})
    os.replace(tmp, path)
    print(
        f"[make_bench_data] wrote {path} ({path.stat().st_size / 2**30:.2f} GiB), nnz={nnz} "
        f"({nnz / (n_cells * n_genes):.3%}) in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    return path


def _atlas_obs(
    rng: np.random.Generator, n_cells: int, n_counts: np.ndarray, n_genes: np.ndarray
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    cluster, embeddings = clustered_embeddings(rng, n_cells)
    obs = pd.DataFrame(
        {
            **cluster_columns(rng, cluster),
            "n_counts": n_counts,
            "n_genes": n_genes,
            "pct_mito": rng.uniform(0.0, 20.0, n_cells).astype(np.float32),
        },
        index=pd.Index([f"cell_{i:07d}" for i in range(n_cells)], name="cell_ids"),
    )
    return obs, embeddings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="comma-separated cell counts (default: %(default)s)",
    )
    parser.add_argument(
        "--atlas",
        default="",
        help="comma-separated cell counts for 20,000-gene atlas shapes with counts and raw (e.g. 100000,1000000)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "bench-data")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--no-nolayers", action="store_true", help="skip the _nolayers twins")
    parser.add_argument("--force", action="store_true", help="rewrite files that already exist")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        for path in make_dataset(size, args.out, args.seed, not args.no_nolayers, args.force):
            print(path)
    for size in (int(s) for s in args.atlas.split(",") if s.strip()):
        print(make_atlas(size, args.out, args.seed, args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
