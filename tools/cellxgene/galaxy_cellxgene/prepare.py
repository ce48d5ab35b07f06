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
from galaxy_cellxgene.legacy_frame import frame_of, is_structured
from galaxy_cellxgene.obsm import SPATIAL_KEY, coordinates, entries, has_spatial, spatial_name, tissue_view
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
    return [e.key for e in entries(f) if e.is_array and e.shape[1] > 2]


def _not_arrays(f: h5py.File) -> list[str]:
    """obsm entries cellxgene never draws and may not load: dataframes, awkward and sparse arrays."""
    return [e.key for e in entries(f) if not e.is_array]


def presented_frames(f: h5py.File) -> list[str]:
    """obs/var, if cellxgene 1.3.0 cannot load them as written (see frames.LazyFrame.presentation;
    anndata < 0.7's structured arrays: always, so cellxgene reads the current on-disk format)."""
    return [axis for axis in ("obs", "var") if frame_of(f[axis]).needs_presenting()]


def _obsm_rewritten(f: h5py.File) -> bool:
    """obsm must be written anew: a pre-0.7 structured array, or tissue coordinates to offer."""
    return ("obsm" in f and is_structured(f["obsm"])) or has_spatial(f)


def leaves_out_something(source: Path) -> bool:
    """True if the file has parts cellxgene would load into memory in vain (or obsm to write anew)."""
    with h5py.File(source, "r") as f:
        unused = any(key in f and len(f[key]) > 0 for key in ("layers", "raw", "obsp", "varm", "varp"))
        return unused or bool(_wide_embeddings(f)) or bool(_not_arrays(f)) or _obsm_rewritten(f)


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
        with h5py.File(source, "r") as f:
            spatial = f", tissue coordinates as '{spatial_name(list(f['obsm']))}'" if has_spatial(f) else ""
        return Prepared(
            target, True, f"leaving out what cellxgene does not show: layers, raw, extra dimensions{spatial}"
        )
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
    with h5py.File(source, "r") as src, h5py.File(tmp, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        presented = presented_frames(src)
        rewrite_var = options.make_var_names_unique or "var" in presented
        skip = _wide_embeddings(src) + _not_arrays(src)
        for group in LINKED_GROUPS:
            if group not in src or (group == "var" and rewrite_var) or (group == "obs" and "obs" in presented):
                continue
            if group == "obsm" and (skip or _obsm_rewritten(src)):
                _write_obsm(src, dst, source)
            elif group == "uns" and is_structured(src["obs"]):
                _link_legacy_uns(src, dst, source)
            else:
                dst[group] = h5py.ExternalLink(str(source), f"/{group}")
        if "obs" in presented or rewrite_var:
            _write_frames(src, dst, "obs" in presented, rewrite_var, options)
        dst["X"] = h5py.ExternalLink(str(source), matrix)


def _write_frames(src: h5py.File, dst: h5py.File, obs: bool, var: bool, options: ViewerOptions) -> None:
    """obs and var as cellxgene can read them. Imported here: anndata costs ~0.25 s, which most
    files (linked, not rewritten) should not pay before their first page is served."""
    import pandas as pd
    from anndata.io import write_elem

    if obs:
        write_elem(dst, "obs", frame_of(src["obs"]).presented())
    if var:
        frame = frame_of(src["var"]).presented()
        if options.make_var_names_unique:
            names = frame[options.var_names].astype(str) if options.var_names else frame.index.astype(str)
            frame.index = pd.Index(unique_names(names), dtype=object)
        write_elem(dst, "var", frame)


def _write_obsm(src: h5py.File, dst: h5py.File, source: Path) -> None:
    """Links for narrow embeddings; the two drawn columns of wide ones (n_cells x 2 each); nothing
    for entries that are not arrays (dataframes, awkward arrays: cellxgene never draws them).
    Tissue coordinates become `X_spatial`, y flipped (obsm.py); a pre-0.7 structured obsm is
    written out entry by entry (its entries cannot be linked)."""
    obsm = dst.create_group("obsm")
    node = src["obsm"]
    structured = is_structured(node)
    if not structured:
        for key, value in node.attrs.items():
            obsm.attrs[key] = value
    found = entries(src)
    for entry in found:
        if not entry.is_array or entry.dtype_kind not in "fiub":
            continue
        if entry.key == SPATIAL_KEY:
            name = f"X_{spatial_name([e.key for e in found])}"
            obsm.create_dataset(name, data=tissue_view(coordinates(src, entry.key)))
        elif structured or entry.shape[1] > 2:
            copy = obsm.create_dataset(entry.key, data=coordinates(src, entry.key))
            for attr, value in ({} if structured else node[entry.key].attrs).items():
                copy.attrs[attr] = value
        else:
            obsm[entry.key] = h5py.ExternalLink(str(source), f"/obsm/{entry.key}")


def _link_legacy_uns(src: h5py.File, dst: h5py.File, source: Path) -> None:
    """uns of a pre-0.7 file, minus `<column>_categories`: the written obs already holds them."""
    uns = dst.create_group("uns")
    for key in src["uns"]:
        if not key.endswith("_categories"):
            uns[key] = h5py.ExternalLink(str(source), f"/uns/{key}")


def unique_names(values) -> list[str]:
    """anndata's rule (`name`, `name-1`, `name-2`, ...) so names match what scanpy users expect."""
    import pandas as pd
    from anndata.utils import make_index_unique

    return list(make_index_unique(pd.Index(list(values), dtype=str)))
