"""Atlas scale (issue 17): plain vs the runtime with X's column copy in memory and on disk (bench/atlas.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from data.make_bench_data import atlas_name
from galaxy_cellxgene import store_cache
from galaxy_cellxgene.settings import INDEX_CHOICE

from bench import atlas, procs
from bench.cases import TOOL_DIR, Dataset, runtime_launch
from bench.common import CELLXGENE, log, rotate
from bench.harness import Bench


def launches(
    ds: atlas.AtlasData, run_dir: Path, limit_gib: float, cache: Path, others: dict[str, Path] | None = None
) -> list[tuple[str, procs.Launch]]:
    """plain; the runtime with the column copy in memory, on disk, and on disk from the shared store
    cache (store_cache.py, built once before the runs); each --variant (`others`: name -> a patched
    copy of tools/cellxgene) on disk and on disk cached, side by side: same data-segment ceiling."""
    cap = ["prlimit", f"--data={int(limit_gib * 2**30)}"]
    plain = procs.Launch("plain", [*cap, CELLXGENE, "--no-upgrade-check", "launch", str(ds.path), "--port", "{port}"])
    out = [("plain", plain)]
    variants = {
        "runtime-memory": (["--x-store", "memory"], {}),
        "runtime-disk": (["--x-store", "disk"], {}),
        "runtime-disk-cached": (
            ["--x-store", "disk", "--dataset-uuid", atlas.CACHE_UUID],
            {store_cache.CACHE_ENV: str(cache)},
        ),
    }
    # Genes by the var index (Ensembl IDs), as plain shows them: the runtime's default is now the
    # unique `gene_symbols` column (gene_names.py), where a gene asked for by ID answers 0 cells.
    same_names = ["--var-names", INDEX_CHOICE]
    roots = [("runtime", TOOL_DIR), *(others or {}).items()]
    for prefix, root in roots:
        for kind, (extra, env) in variants.items():
            if prefix != "runtime" and kind == "runtime-memory":
                continue
            name = kind if prefix == "runtime" else prefix + kind.removeprefix("runtime")
            dataset = Dataset(ds.path, ds.n_cells, ds.genes, [])
            base = runtime_launch(dataset, run_dir, None, [*extra, *same_names], name, root)
            out.append((name, procs.Launch(name, [*cap, *base.server], env={**base.env, **env})))
    return out


def run(bench: Bench, datasets: list[Dataset]) -> list[dict]:
    """Reads its own datasets (bench-data/atlas_*.h5ad): `datasets` is not used."""
    args = bench.args
    rows = []
    for size in (int(s) for s in args.atlas_sizes.split(",") if s):
        path = args.data / atlas_name(size)
        if not path.exists():
            log(f"{path} missing: run scripts/data/make_bench_data.py --sizes '' --atlas {size}")
            continue
        ds = atlas.AtlasData.load(path, path.stem.removeprefix("atlas_"))
        rows += [atlas.summarize(ds.label, name, recs) for name, recs in measure(bench, ds).items()]
    atlas.add_ratios(rows)
    return rows


def measure(bench: Bench, ds: atlas.AtlasData) -> dict[str, list[dict]]:
    args = bench.args
    samples: dict[str, list[dict]] = {}
    cache = bench.run_dir(f"atlas-{ds.label}-store-cache")
    store = atlas.fill_store_cache(ds, cache, log)
    for rep in range(args.atlas_reps):
        others = {k: v for k, v in args.runtimes.items() if k != "runtime"}
        makers = launches(ds, args.data, args.data_limit_gib, cache, others)
        for name, _ in rotate(makers, rep):
            run_dir = bench.run_dir(f"atlas-{ds.label}-{name}")
            launch = dict(launches(ds, run_dir, args.data_limit_gib, cache, others))[name]
            rec = atlas.run_one(ds, name, launch, run_dir, args.atlas_clicks, 17 + rep, args.atlas_wait, log)
            if not args.keep_runs:
                shutil.rmtree(run_dir, ignore_errors=True)
            samples.setdefault(name, []).append(rec)
        samples.setdefault("floor", []).append(atlas.floor_record(ds, store, args.atlas_clicks, 17 + rep, log))
    if not args.keep_runs:
        shutil.rmtree(cache, ignore_errors=True)
    return samples
