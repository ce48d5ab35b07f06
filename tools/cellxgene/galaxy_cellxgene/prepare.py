"""Hand cellxgene a dataset it can read, without copying the expression matrix.

Galaxy stores datasets as `dataset_N.dat`, which cellxgene refuses (it wants `.h5ad`), so
the plain case is a symlink. When something must change (unique gene names, a layer shown
as X, obs/var columns cellxgene 1.3.0 cannot load as written, such as pandas' nullable
columns and anndata 0.13's nullable strings) or the file carries layers or obsm entries
cellxgene would load without ever showing, we write a
small h5ad holding obs/var/obsm/uns and make its `/X` an HDF5 external link to the
original's `/X` or `/layers/<name>`: the cost follows the metadata, not the matrix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py

from galaxy_cellxgene.containment import require_self_contained
from galaxy_cellxgene.frames import LazyFrame
from galaxy_cellxgene.settings import ViewerOptions, must_rewrite_metadata

# Groups cellxgene reads, linked rather than copied; layers, raw, obsp, varm, varp are left out.
LINKED_GROUPS = ("obs", "var", "obsm", "uns")


@dataclass(frozen=True)
class Prepared:
    path: Path
    linked: bool  # True: small h5ad with external links; False: symlink to the input
    reason: str


def _wide_embeddings(f: h5py.File) -> list[str]:
    """Embeddings with more than the two dimensions cellxgene draws (X_pca: often 50)."""
    if "obsm" not in f:
        return []
    return [k for k, v in f["obsm"].items() if isinstance(v, h5py.Dataset) and v.ndim == 2 and v.shape[1] > 2]


def _not_arrays(f: h5py.File) -> list[str]:
    """obsm entries cellxgene never draws and may not load: dataframes, awkward and sparse arrays."""
    if "obsm" not in f:
        return []
    return [k for k, v in f["obsm"].items() if not isinstance(v, h5py.Dataset) or v.ndim != 2]


def presented_frames(f: h5py.File) -> list[str]:
    """obs/var, if cellxgene 1.3.0 cannot load them as written (see frames.LazyFrame.presentation)."""
    return [axis for axis in ("obs", "var") if LazyFrame(f[axis]).needs_presenting()]


def leaves_out_something(source: Path) -> bool:
    """True if the file has parts cellxgene would load into memory in vain."""
    with h5py.File(source, "r") as f:
        unused = any(key in f and len(f[key]) > 0 for key in ("layers", "raw", "obsp", "varm", "varp"))
        return unused or bool(_wide_embeddings(f)) or bool(_not_arrays(f))


def prepare(source: str | Path, work_dir: str | Path, options: ViewerOptions, name: str = "dataset") -> Prepared:
    source = Path(source).resolve()
    # Every viewer opens its dataset through here: the one place no outside part may pass.
    # The small file made below links into `source` only, and is the one file allowed links.
    require_self_contained(source)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    target = work_dir / f"{name}.h5ad"
    if target.is_symlink() or target.exists():
        target.unlink()

    with h5py.File(source, "r") as f:
        presented = presented_frames(f)
    if must_rewrite_metadata(options) or presented:
        reasons = ["unique gene names"] if options.make_var_names_unique else []
        if options.layer:
            reasons.append(f"layer '{options.layer}' as X")
        if presented:
            reasons.append(f"{' and '.join(presented)} columns in a form cellxgene loads")
        write_linked(source, target, options)
        return Prepared(target, True, ", ".join(reasons))
    if leaves_out_something(source):
        write_linked(source, target, options)
        return Prepared(target, True, "leaving out what cellxgene does not show: layers, raw, extra dimensions")
    os.symlink(source, target)
    return Prepared(target, False, "read in place")


def write_linked(source: Path, target: Path, options: ViewerOptions) -> None:
    """Small h5ad of absolute external links into `source`; only a changed var is written.

    h5py resolves links to groups and datasets alike, so anndata (and cellxgene) read the
    linked obs/obsm/uns/X as if they were local; the file stays a few kilobytes at any size.
    """
    matrix = f"/layers/{options.layer}" if options.layer else "/X"
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        _write_links(source, tmp, matrix, options)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write leaves no half-made file beside the job's outputs


def _write_links(source: Path, tmp: Path, matrix: str, options: ViewerOptions) -> None:
    import pandas as pd
    from anndata.io import write_elem

    with h5py.File(source, "r") as src, h5py.File(tmp, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        presented = presented_frames(src)
        rewrite_var = options.make_var_names_unique or "var" in presented
        skip = _wide_embeddings(src) + _not_arrays(src)
        for group in LINKED_GROUPS:
            if group not in src or (group == "var" and rewrite_var) or (group == "obs" and "obs" in presented):
                continue
            if group == "obsm" and skip:
                _write_obsm(src, dst, source)
            else:
                dst[group] = h5py.ExternalLink(str(source), f"/{group}")
        if "obs" in presented:
            write_elem(dst, "obs", LazyFrame(src["obs"]).presented())
        if rewrite_var:
            var = LazyFrame(src["var"]).presented()
            if options.make_var_names_unique:
                names = var[options.var_names].astype(str) if options.var_names else var.index.astype(str)
                var.index = pd.Index(unique_names(names), dtype=object)
            write_elem(dst, "var", var)
        dst["X"] = h5py.ExternalLink(str(source), matrix)


def _write_obsm(src: h5py.File, dst: h5py.File, source: Path) -> None:
    """Links for narrow embeddings; the two drawn columns of wide ones (n_cells x 2 each); nothing
    for entries that are not arrays (dataframes, awkward arrays: cellxgene never draws them)."""
    obsm = dst.create_group("obsm")
    for key, value in src["obsm"].attrs.items():
        obsm.attrs[key] = value
    wide, not_arrays = _wide_embeddings(src), _not_arrays(src)
    for key in src["obsm"]:
        if key in not_arrays:
            continue
        if key in wide:
            node = src["obsm"][key]
            copy = obsm.create_dataset(key, data=node[:, :2])
            for attr, value in node.attrs.items():
                copy.attrs[attr] = value
        else:
            obsm[key] = h5py.ExternalLink(str(source), f"/obsm/{key}")


def unique_names(values) -> list[str]:
    """anndata's rule (`name`, `name-1`, `name-2`, ...) so names match what scanpy users expect."""
    import pandas as pd
    from anndata.utils import make_index_unique

    return list(make_index_unique(pd.Index(list(values), dtype=str)))
