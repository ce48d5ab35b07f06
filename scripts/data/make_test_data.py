#!/usr/bin/env python3
"""Make every file in test-data/ from one pinned public source, deterministically.

The source is the 700-cell PBMC dataset that scanpy ships inside its wheel
(scanpy/datasets/10x_pbmc68k_reduced.h5ad). The wheel is fetched with pip (no scanpy
install needed) and the file's checksum is verified, so the same bytes go in every time.

    .venv/bin/python scripts/data/make_test_data.py            # writes test-data/
    .venv/bin/python scripts/data/make_test_data.py --out DIR  # writes elsewhere (used by the tests)

Rules the files obey (tests/tool/test_test_data.py checks them): every file < 1 MB, every
h5ad >= 200 cells (smaller ones hit cellxgene's bytearray bug in a real browser), and every
"broken_*" file is broken in exactly the way its name says.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[2]
SCANPY_VERSION = "1.11.5"
SCANPY_WHEEL = f"scanpy-{SCANPY_VERSION}-py3-none-any.whl"
SOURCE_MEMBER = "scanpy/datasets/10x_pbmc68k_reduced.h5ad"
SOURCE_SHA256 = "e71d41e737c941559b7c57c9243bdb3d2c889c2adfdf00e3422ac6b46783676f"
CACHE = ROOT / ".cache" / "test-data-source"

SEED = 20261125
N_CELLS = 320
N_GENES = 300
N_PCS = 20
N_BROKEN_CELLS = 200
N_BROKEN_GENES = 100
# Genes the demo gene sets refer to; kept whatever their dispersion.
MARKERS = {
    "T cells": ("T lymphocyte markers", ["CD3D", "CD3E", "IL7R", "CCR7", "CD8A"]),
    "B cells": ("B lymphocyte markers", ["MS4A1", "CD79A"]),
    "Monocytes": ("Classical and non-classical monocytes", ["LYZ", "CST3", "S100A8", "FCGR3A"]),
    "NK cells": ("", ["NKG7", "GNLY"]),
}
# How many symbols the `gene_symbols` column repeats (to exercise "make unique").
N_DUPLICATE_SYMBOLS = 3
# cellxgene writes two comment lines; ours carry a fixed date so the files never change.
LABELS_HEADER = (
    "# Annotations generated on 2026-11-25T00:00:00 using cellxgene version 1.3.0\n"
    "# Input data file was pbmc_demo.h5ad, which was last modified on 2026-11-25T00:00:00\n"
)
GENE_SETS_HEADER = (
    "# Gene set generated on 2026-11-25T00:00:00 using cellxgene version 1.3.0\n"
    "# Input data file was pbmc_demo.h5ad, which was last modified on 2026-11-25T00:00:00\n"
)
GENE_SETS_COLUMNS = ["gene_set_name", "gene_set_description", "gene_symbol", "gene_description"]
# A coarse cell type per louvain cluster of pbmc68k_reduced, the kind of labels a user makes.
CLUSTER_LABELS = {
    "0": "CD4 T",
    "1": "Monocyte",
    "2": "Dendritic",
    "3": "NK",
    "4": "B",
    "5": "CD8 T",
    "6": "Monocyte",
    "7": "B",
    "8": "Dendritic",
    "9": "Megakaryocyte",
    "10": "Progenitor",
}


def fetch_source() -> Path:
    """Return the pinned source h5ad, fetching scanpy's wheel with pip once."""
    target = CACHE / "10x_pbmc68k_reduced.h5ad"
    if not target.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        wheel = CACHE / SCANPY_WHEEL
        if not wheel.exists():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--dest",
                    str(CACHE),
                    f"scanpy=={SCANPY_VERSION}",
                ],
                check=True,
            )
        with zipfile.ZipFile(wheel) as zf, tempfile.NamedTemporaryFile(dir=CACHE, delete=False) as tmp:
            tmp.write(zf.read(SOURCE_MEMBER))
        Path(tmp.name).replace(target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{target}: sha256 {digest} is not the pinned {SOURCE_SHA256}; delete it and rerun")
    return target


def load_source(path: Path) -> ad.AnnData:
    with warnings.catch_warnings():
        # The 2018 file keeps neighbour graphs in uns; anndata moves them and says so.
        warnings.simplefilter("ignore", FutureWarning)
        return ad.read_h5ad(path)


def make_demo(src: ad.AnnData) -> ad.AnnData:
    """A real, small, viewer-ready dataset: 320 PBMCs x 300 genes, UMAP + PCA, clusters, a layer."""
    rng = np.random.default_rng(SEED)
    cells = np.sort(rng.choice(src.n_obs, size=N_CELLS, replace=False))

    markers = {g for _, genes in MARKERS.values() for g in genes}
    ranked = src.var["dispersions_norm"].sort_values(ascending=False, kind="stable").index
    chosen = list(markers & set(src.var_names))
    chosen += [g for g in ranked if g not in markers][: N_GENES - len(chosen)]
    genes = np.sort(src.var_names.get_indexer(chosen))

    obs = src.obs.iloc[cells].copy()
    obs["cell_id"] = [f"pbmc_{i:04d}" for i in range(N_CELLS)]  # unique: a valid --obs-names choice
    for col in obs.select_dtypes("category"):
        obs[col] = obs[col].cat.remove_unused_categories()

    var = src.var.iloc[genes][["n_counts", "means", "dispersions", "highly_variable"]].copy()
    symbols = var.index.to_numpy(dtype=object).copy()
    # Overwrite only non-marker genes so every gene set symbol stays findable.
    dups = [i for i in range(1, len(symbols)) if symbols[i] not in markers and symbols[i - 1] not in markers]
    for dst in dups[: N_DUPLICATE_SYMBOLS * 10 : 10]:
        symbols[dst] = symbols[dst - 1]
    var["gene_symbols"] = symbols.astype(str)

    x = np.asarray(src.X[np.ix_(cells, genes)], dtype=np.float32)
    lognorm = sp.csr_matrix(src.raw.X[cells][:, genes], dtype=np.float32)
    demo = ad.AnnData(
        X=x,
        obs=obs,
        var=var,
        obsm={
            "X_umap": np.asarray(src.obsm["X_umap"][cells], dtype=np.float32),
            "X_pca": np.asarray(src.obsm["X_pca"][cells, :N_PCS], dtype=np.float32),
        },
        layers={"lognorm": lognorm},
        uns={
            "louvain_colors": np.asarray(src.uns["louvain_colors"]),
            "bulk_labels_colors": np.asarray(src.uns["bulk_labels_colors"]),
        },
    )
    # Drop colours of clusters the subset lost, so colour lists match category counts.
    for key in ("louvain", "bulk_labels"):
        kept = demo.obs[key].cat.categories
        all_cats = src.obs[key].cat.categories
        demo.uns[f"{key}_colors"] = np.asarray(
            [c for cat, c in zip(all_cats, src.uns[f"{key}_colors"], strict=True) if cat in kept]
        )
    return demo


def write_h5ad(adata: ad.AnnData, path: Path) -> None:
    adata.write_h5ad(path, compression="gzip", compression_opts=9)


def labels_csv(index: pd.Index, columns: dict[str, list[str]]) -> str:
    """Text of a cellxgene labels file: two comment lines, `index,<cat>...`, one row per cell."""
    df = pd.DataFrame(columns, index=pd.Index(index, name="index"))
    return LABELS_HEADER + df.to_csv(lineterminator="\n")


def gene_sets_csv(sets: dict[str, tuple[str, list[str]]]) -> str:
    """Text of a cellxgene gene-sets file: LF comment lines, then CRLF rows (csv's excel dialect)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, dialect="excel")
    writer.writerow(GENE_SETS_COLUMNS)
    for name, (description, genes) in sets.items():
        for gene in genes:
            writer.writerow([name, description, gene, ""])
    return GENE_SETS_HEADER + buf.getvalue()


def demo_labels(demo: ad.AnnData) -> dict[str, list[str]]:
    cell_type = [CLUSTER_LABELS[c] for c in demo.obs["louvain"].astype(str)]
    # A second, sparse category as users leave them: most cells `unassigned`.
    reviewed = ["checked" if i % 7 == 0 else "unassigned" for i in range(demo.n_obs)]
    return {"cell_type": cell_type, "review": reviewed}


def write_text(path: Path, text: str) -> None:
    # newline="" keeps the CRLF rows of gene-sets files exactly as cellxgene writes them.
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


OUTSIDE_LINK_TARGET = "/nonexistent/another_users_dataset.h5ad"


def make_broken(demo: ad.AnnData, out: Path) -> None:
    """Inputs cellxgene refuses, one way each. Names say what is wrong."""
    # Keep broken files small: 200 cells (the floor for the bytearray bug) x 100 genes, no layer.
    demo = demo[:N_BROKEN_CELLS, :N_BROKEN_GENES].copy()
    del demo.layers["lognorm"]
    write_text(out / "broken_not_hdf5.h5ad", "index,louvain\ncell_1,0\n" * 20)

    with h5py.File(out / "broken_not_anndata.h5ad", "w") as f:
        f.create_dataset("matrix", data=np.arange(600, dtype=np.int32).reshape(300, 2))
        f.attrs["description"] = "an HDF5 file, but no AnnData groups (obs, var, X)"
    make_broken_embeddings(demo, out)
    make_broken_names(demo, out)
    make_outside_link(demo, out)


def make_broken_embeddings(demo: ad.AnnData, out: Path) -> None:
    """No embedding, one without the X_ prefix, one with infinities, one all NaN."""
    no_embedding = demo.copy()
    no_embedding.obsm = {}
    write_h5ad(no_embedding, out / "broken_no_embedding.h5ad")

    no_prefix = demo.copy()
    no_prefix.obsm = {"umap": demo.obsm["X_umap"].copy()}
    write_h5ad(no_prefix, out / "broken_embedding_no_prefix.h5ad")

    with_inf = demo.copy()
    umap = demo.obsm["X_umap"].copy()
    umap[5, 0] = np.inf
    umap[17, 1] = -np.inf
    with_inf.obsm = {"X_umap": umap}
    write_h5ad(with_inf, out / "broken_embedding_inf.h5ad")

    all_nan = demo.copy()
    all_nan.obsm = {"X_umap": np.full_like(demo.obsm["X_umap"], np.nan)}
    write_h5ad(all_nan, out / "broken_embedding_all_nan.h5ad")


def make_broken_names(demo: ad.AnnData, out: Path) -> None:
    """Duplicate cell names, duplicate gene names."""
    dup_obs = demo.copy()
    names = dup_obs.obs_names.to_numpy(dtype=object).copy()
    names[1] = names[0]
    names[3] = names[2]
    dup_obs.obs_names = names.astype(str)
    write_h5ad(dup_obs, out / "broken_duplicate_obs_names.h5ad")

    dup_var = demo.copy()
    names = dup_var.var_names.to_numpy(dtype=object).copy()
    names[1] = names[0]
    dup_var.var_names = names.astype(str)
    write_h5ad(dup_var, out / "broken_duplicate_var_names.h5ad")


def make_outside_link(demo: ad.AnnData, out: Path) -> None:
    # A colour list in another file (an HDF5 external link): anndata and cellxgene would read the
    # target's bytes as this dataset's. The target cannot exist, so the file shows the attack
    # without ever pointing at a real file; the runtime must refuse it before resolving anything.
    # In uns, because Galaxy's own h5ad metadata lists uns keys without following them (a link
    # at X would fail Galaxy's metadata step and pause the job before the runtime ever ran).
    outside = out / "broken_outside_link.h5ad"
    write_h5ad(demo, outside)
    with h5py.File(outside, "r+") as f:
        del f["uns/louvain_colors"]
        f["uns/louvain_colors"] = h5py.ExternalLink(OUTSIDE_LINK_TARGET, "/uns/louvain_colors")


def make_broken_csvs(demo: ad.AnnData, out: Path) -> None:
    """Previous annotations / gene sets that must be refused for pbmc_demo.h5ad."""
    labels = demo_labels(demo)
    # Same row count as pbmc_demo on purpose: cellxgene itself matches labels to cells by
    # position, so only a check of the cell names catches a file made for another dataset.
    other_cells = [f"OTHER-{i:05d}-1" for i in range(demo.n_obs)]
    write_text(out / "broken_annotations_other_dataset.csv", labels_csv(pd.Index(other_cells), labels))

    clash = {"louvain": labels["cell_type"]}  # same name as an existing obs column
    write_text(out / "broken_annotations_clash.csv", labels_csv(demo.obs_names, clash))

    good = labels_csv(demo.obs_names, labels).splitlines(keepends=True)
    # A row with too many fields in the middle of the file: what an editor mishap leaves.
    good[10] = good[10].rstrip("\n") + ",extra,fields\n"
    write_text(out / "broken_annotations_malformed.csv", "".join(good))

    write_text(
        out / "broken_gene_sets_malformed.csv",
        GENE_SETS_HEADER + "name,genes\r\nT cells,CD3D CD3E\r\n",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "test-data", help="folder to write (default test-data/)")
    parser.add_argument("--source", type=Path, help="use this copy of 10x_pbmc68k_reduced.h5ad (checksum-verified)")
    args = parser.parse_args(argv)

    if args.source:
        digest = hashlib.sha256(args.source.read_bytes()).hexdigest()
        if digest != SOURCE_SHA256:
            raise SystemExit(f"{args.source}: not the pinned pbmc68k_reduced (sha256 {digest})")
        source = args.source
    else:
        source = fetch_source()
    args.out.mkdir(parents=True, exist_ok=True)

    demo = make_demo(load_source(source))
    write_h5ad(demo, args.out / "pbmc_demo.h5ad")
    write_text(args.out / "pbmc_demo_annotations.csv", labels_csv(demo.obs_names, demo_labels(demo)))
    write_text(args.out / "pbmc_demo_gene_sets.csv", gene_sets_csv(MARKERS))
    make_broken(demo, args.out)
    make_broken_csvs(demo, args.out)

    for path in sorted(args.out.iterdir()):
        print(f"{path.stat().st_size:>9}  {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
