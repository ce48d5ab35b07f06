#!/usr/bin/env python3
"""Write the h5ad compatibility corpus (test-data/compat/) with the anndata versions users have.

One virtual environment per writer, each pinned (anndata, pandas, numpy; Python from pyenv),
installed from PyPI. Every writer writes the same layouts (dense, CSR with raw and a counts
layer, CSC integers, pandas' nullable columns, no X, a dataframe in obsm); the scanpy writers
also write a subset of scanpy's bundled PBMC data. A layout a writer cannot write is skipped
and listed. The files are committed, so the test suite never builds these environments:

    python3 scripts/data/make_compat_data.py --venvs /work/wt/venvs/compat        # build + write
    python3 scripts/data/make_compat_data.py --venvs DIR --readback MERGED.h5ad   # read back (tests)

This file runs under every writer's Python (3.9 to 3.13): keep its syntax to 3.9.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test-data" / "compat"
PYENV = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"

# name -> (Python, pinned packages). pandas: the release each anndata was current with.
WRITERS = {
    "anndata-0.7": ("3.9.18", ["anndata==0.7.8", "pandas==1.3.5", "numpy==1.21.6", "h5py==3.6.0", "scipy==1.7.3"]),
    "anndata-0.8": ("3.10.13", ["anndata==0.8.0", "pandas==1.5.3", "numpy==1.23.5"]),
    "anndata-0.9": ("3.11.7", ["anndata==0.9.2", "pandas==2.0.3", "numpy==1.24.4"]),
    "anndata-0.10": ("3.11.7", ["anndata==0.10.9", "pandas==2.2.2", "numpy==1.26.4"]),
    "anndata-0.11": ("3.12.1", ["anndata==0.11.4", "pandas==2.2.3", "numpy==2.2.6"]),
    "anndata-0.12": ("3.12.1", ["anndata==0.12.19", "pandas==2.3.3", "numpy==2.3.5"]),
    "anndata-0.13": ("3.13.0", ["anndata==0.13.4", "pandas==3.1.1"]),
    "scanpy-1.9": ("3.11.7", ["scanpy==1.9.8", "anndata==0.10.9", "pandas==2.1.4", "numpy==1.26.4"]),
    "scanpy-1.12": ("3.13.0", ["scanpy==1.12.4", "anndata==0.13.4", "pandas==3.1.1"]),
}
LAYOUTS = ("dense", "csr_raw_layer", "csc_int", "nullable", "nullable_string", "no_x", "obsm_frame")
N_CELLS, N_GENES = 240, 60


def venv_python(venvs: Path, writer: str) -> Path:
    return venvs / writer / "bin" / "python"


def build_venv(venvs: Path, writer: str) -> Path:
    python_version, pins = WRITERS[writer]
    target = venvs / writer
    stamp = target / "compat-pins.txt"
    if stamp.exists() and stamp.read_text() == "\n".join(pins):
        return venv_python(venvs, writer)
    subprocess.run([str(PYENV / python_version / "bin" / "python"), "-m", "venv", str(target)], check=True)
    subprocess.run([str(target / "bin" / "pip"), "install", "-q", *pins], check=True)
    stamp.write_text("\n".join(pins))
    return venv_python(venvs, writer)


# ---- run inside a writer's venv ----


def _frames(rng, counts, layout: str):
    """obs and var: categories, numbers, strings, booleans; the nullable layouts add their dtypes."""
    import numpy as np
    import pandas as pd

    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(rng.choice(["B", "T", "NK", "Mono"], N_CELLS)),
            "cluster": pd.Categorical(rng.integers(0, 5, N_CELLS)),  # numeric categories
            "n_counts": counts.sum(axis=1).astype(np.float64),
            "barcode": [f"bc{i:04d}" for i in range(N_CELLS)],
            "is_doublet": rng.random(N_CELLS) < 0.1,
        },
        index=[f"cell{i:04d}" for i in range(N_CELLS)],
    )
    var = pd.DataFrame(
        {"gene_symbol": [f"SYM{i}" for i in range(N_GENES)], "highly_variable": rng.random(N_GENES) < 0.3},
        index=[f"GENE{i}" for i in range(N_GENES)],
    )
    if layout == "nullable":
        missing = np.arange(N_CELLS) % 7 == 0
        obs["n_genes"] = pd.array(np.where(missing, None, np.arange(N_CELLS)).tolist(), dtype="Int64")
        obs["qc_pass"] = pd.array(np.where(missing, None, np.arange(N_CELLS) % 2 == 0).tolist(), dtype="boolean")
        obs["n_cells_total"] = pd.array(np.arange(N_CELLS).tolist(), dtype="Int64")  # nullable, none missing
        var["length"] = pd.array([None, *range(1, N_GENES)], dtype="Int64")
    if layout == "nullable_string":  # pandas' StringDtype: anndata >= 0.11 writes it (opt-in before 0.13)
        _nullable_strings(obs)
    return obs, var


def _nullable_strings(obs) -> None:
    import anndata as ad
    import numpy as np
    import pandas as pd

    if hasattr(getattr(ad, "settings", None), "allow_write_nullable_strings"):
        ad.settings.allow_write_nullable_strings = True
    donors = np.array(["d1", "d2", "d3"])[np.arange(N_CELLS) % 3].astype(object)
    donors[np.arange(N_CELLS) % 7 == 0] = None
    obs["donor"] = pd.array(donors.tolist(), dtype="string")
    obs["barcode"] = obs["barcode"].astype("string")


def _matrices(counts, layout: str):
    """X (or None) and the layers: dense, CSR with a counts layer, CSC of integers, or only layers."""
    import numpy as np
    from scipy import sparse

    x = np.log1p(counts)
    layers = {}
    if layout == "dense":
        x = x.astype(np.float64)
    elif layout == "csr_raw_layer":
        x = sparse.csr_matrix(x)
        layers["counts"] = sparse.csr_matrix(counts)
    elif layout == "csc_int":
        x = sparse.csc_matrix(counts.astype(np.int32))
    elif layout == "no_x":
        layers["counts"] = sparse.csr_matrix(counts)
        layers["log1p"] = x
        x = None
    return x, layers


def _base(layout: str):
    import anndata as ad
    import numpy as np
    import pandas as pd
    from scipy import sparse

    rng = np.random.default_rng(13)
    counts = rng.poisson(0.8, size=(N_CELLS, N_GENES)).astype(np.float32)
    obs, var = _frames(rng, counts, layout)
    x, layers = _matrices(counts, layout)
    adata = ad.AnnData(X=x, obs=obs, var=var, layers=layers or None)
    adata.obsm["X_umap"] = rng.normal(size=(N_CELLS, 2)).astype(np.float32)
    adata.obsm["X_pca"] = rng.normal(size=(N_CELLS, 10))
    if layout == "csr_raw_layer":
        adata.raw = ad.AnnData(X=sparse.csr_matrix(counts), obs=obs, var=var)
    if layout == "obsm_frame":
        adata.obsm["qc_frame"] = pd.DataFrame({"score": rng.random(N_CELLS)}, index=obs.index)
    adata.uns["writer_note"] = "galaxy-cellxgene compat corpus"
    return adata


def _scanpy_pbmc():
    import scanpy as sc

    adata = sc.datasets.pbmc68k_reduced()  # shipped inside the scanpy package, no download
    adata = adata[:260].copy()
    sc.pp.pca(adata, n_comps=10)
    return adata


def _parameters(function) -> list:
    import inspect

    return list(inspect.signature(function).parameters)


def write_all(writer: str, out: Path) -> dict:
    import importlib.metadata as md
    import platform

    made, skipped = [], {}
    layouts = ["pbmc"] if writer.startswith("scanpy") else list(LAYOUTS)  # scanpy: its own output
    for layout in layouts:
        path = out / f"{writer}_{layout}.h5ad"
        try:
            adata = _scanpy_pbmc() if layout == "pbmc" else _base(layout)
            options = {"compression": "gzip"}
            if layout == "nullable_string" and "convert_strings_to_categoricals" in _parameters(adata.write_h5ad):
                # As written with that switch off, text with missing values stays pandas' string type.
                options["convert_strings_to_categoricals"] = False
            adata.write_h5ad(path, **options)
            made.append(path.name)
        except Exception as err:  # the writer cannot write this layout: record it, write the rest
            path.unlink(missing_ok=True)
            skipped[layout] = " ".join(f"{type(err).__name__}: {err}".split())[:200]
    versions = {p: md.version(p) for p in ("anndata", "pandas", "numpy", "h5py", "scipy")}
    if writer.startswith("scanpy"):
        versions["scanpy"] = md.version("scanpy")
    versions["python"] = platform.python_version()
    return {"writer": writer, "versions": versions, "made": made, "skipped": skipped}


def _same(a, b) -> bool:
    """Equal values, missing where missing (a nullable string column may come back categorical)."""
    import pandas as pd

    def norm(series):
        return [None if pd.isna(v) else str(v) for v in series.astype(object)]

    return norm(a) == norm(b)


def readback(path: Path, labels: list, original: "Path | None" = None) -> dict:
    """The writer's own anndata reads the merged file: labels are categorical obs columns and
    every column of the original obs is still there, equal."""
    import anndata as ad
    import pandas as pd

    adata = ad.read_h5ad(path)
    result = {"n_obs": adata.n_obs, "obs_columns": [str(c) for c in adata.obs.columns]}
    result["labels"] = {
        c: {
            "categorical": isinstance(adata.obs[c].dtype, pd.CategoricalDtype),
            "values": [str(v) for v in adata.obs[c]],
        }
        for c in labels
        if c in adata.obs
    }
    if original is not None:
        before = ad.read_h5ad(original).obs
        result["intact"] = all(c in adata.obs and _same(before[c], adata.obs[c]) for c in before.columns)
        result["index_intact"] = list(map(str, before.index)) == list(map(str, adata.obs.index))
        result["dtypes_kept"] = [str(c) for c in before.columns if str(before[c].dtype) == str(adata.obs[c].dtype)]
    return result


# ---- driver ----


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venvs", type=Path, required=True, help="folder of the writers' environments")
    parser.add_argument("--writers", nargs="*", default=list(WRITERS), choices=list(WRITERS))
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--inside", help=argparse.SUPPRESS)  # run in a writer's venv
    parser.add_argument("--readback", type=Path, help="read a merged h5ad back with --writers' anndata")
    parser.add_argument("--labels", nargs="*", default=[])
    parser.add_argument("--original", type=Path, help="with --readback: the input the merge started from")
    args = parser.parse_args()
    if args.inside:
        args.out.mkdir(parents=True, exist_ok=True)
        if args.readback:
            result = readback(args.readback, args.labels, args.original)
        else:
            result = write_all(args.inside, args.out)
        print(json.dumps(result))
        return 0
    if args.readback:
        for writer in args.writers:
            cmd = [str(venv_python(args.venvs, writer)), __file__, "--venvs", str(args.venvs), "--inside", writer]
            cmd += ["--readback", str(args.readback), "--labels", *args.labels]
            cmd += ["--original", str(args.original)] if args.original else []
            print(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "writers.json"
    earlier = json.loads(manifest_path.read_text()) if manifest_path.exists() else []
    manifest = [m for m in earlier if m["writer"] not in args.writers]
    for writer in args.writers:
        python = build_venv(args.venvs, writer)
        cmd = [str(python), __file__, "--venvs", str(args.venvs), "--inside", writer, "--out", str(args.out)]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        manifest.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{writer}: {len(manifest[-1]['made'])} files, skipped {sorted(manifest[-1]['skipped'])}")
    manifest.sort(key=lambda m: list(WRITERS).index(m["writer"]))
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
