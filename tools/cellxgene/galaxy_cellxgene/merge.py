"""One merge for every path that writes an annotated h5ad: the merge tool (cli.py), a viewer's
clean finish (app.Session) and the list tool's finish of a dataset that is no longer loaded (multi).

The input is copied byte for byte; the user's label categories are added to obs beside the
original columns, which stay as their writer stored them, and gene sets go to uns.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from galaxy_cellxgene.labels import GENE_SETS_HEADER, LabelsError, read_gene_sets, read_labels
from galaxy_cellxgene.legacy_frame import is_structured

GENE_SETS_UNS_KEY = "cellxgene_gene_sets"


def merge_files(
    source: str | Path,
    output: str | Path,
    annotations: Path | None,
    gene_sets: Path | None,
    scratch_dir: str | Path | None = None,
    overwrite: bool = False,
) -> tuple[pd.DataFrame | None, dict[str, dict] | None]:
    """merge_into_h5ad from cellxgene's CSV files (either may be None); returns what was read."""
    labels = read_labels(annotations) if annotations is not None else None
    sets = read_gene_sets(gene_sets) if gene_sets is not None else None
    merge_into_h5ad(source, output, labels, sets, scratch_dir=scratch_dir, overwrite=overwrite)
    return labels, sets


def gene_sets_frame(gene_sets: Mapping[str, dict]) -> pd.DataFrame:
    rows = []
    for gene_set in gene_sets.values():
        genes = gene_set.get("genes") or [{"gene_symbol": "", "gene_description": ""}]
        for gene in genes:
            rows.append(
                [
                    gene_set["geneset_name"],
                    gene_set.get("geneset_description") or "",
                    gene.get("gene_symbol") or "",
                    gene.get("gene_description") or "",
                ]
            )
    return pd.DataFrame(rows, columns=GENE_SETS_HEADER, dtype=str)


def align_labels(labels: pd.DataFrame, obs: pd.DataFrame) -> pd.DataFrame:
    """cellxgene stores one row per cell in obs order; accept the index or any obs column as names."""
    if len(labels) != len(obs):
        raise LabelsError(
            f"the annotations have {len(labels)} rows but the dataset has {len(obs)} cells: "
            "they were made on another dataset.",
            "Use the annotations saved from this same dataset.",
        )
    names = pd.Index(labels.index.astype(str))
    candidates = [obs.index.astype(str)] + [obs[c].astype(str) for c in obs.columns if obs[c].dtype != float]
    if not any(names.equals(pd.Index(c)) for c in candidates):
        raise LabelsError(
            "the cell names in the annotations do not match this dataset's cells: they were made on another dataset.",
            "Use the annotations saved from this same dataset.",
        )
    aligned = labels.copy()
    aligned.index = obs.index
    return aligned


def add_labels_to_obs(obs: pd.DataFrame, labels: pd.DataFrame, overwrite: bool = False) -> pd.DataFrame:
    clash = sorted(set(map(str, labels.columns)) & set(map(str, obs.columns)))
    if clash and not overwrite:
        raise LabelsError(
            f"the categories {clash} already exist as obs columns.",
            "Rename them in the annotations CSV header, or allow replacing existing columns.",
        )
    aligned = align_labels(labels, obs)
    merged = obs.copy()
    for column in aligned.columns:
        values = aligned[column].astype(str)
        merged[str(column)] = pd.Categorical(values, categories=sorted(values.unique()))
    return merged


def add_label_columns(group: h5py.Group, labels: pd.DataFrame, overwrite: bool = False) -> None:
    """Write each label category as a categorical column into the obs group, in place, in the
    frame's own on-disk format (anndata 0.7's keeps categories apart, in obs/__categories)."""
    from anndata.io import write_elem

    from galaxy_cellxgene.frames import LazyFrame

    frame = LazyFrame(group)
    if frame.index_key in map(str, labels.columns):
        raise LabelsError(
            f"the category '{frame.index_key}' has the name of the obs index.", "Rename it in the header line."
        )
    merged = add_labels_to_obs(frame.to_pandas(), labels, overwrite=overwrite)
    order = [str(c) for c in frame.columns]
    for column in map(str, labels.columns):
        if column in group:
            del group[column]
        values = merged[column].array
        if frame.legacy:
            _write_legacy_categorical(group, column, values)
        else:
            write_elem(group, column, values)
        if column not in order:
            order.append(column)
    group.attrs.create("column-order", order, dtype=h5py.string_dtype())


def _write_legacy_categorical(group: h5py.Group, column: str, values: pd.Categorical) -> None:
    """anndata 0.7's form: codes in obs/<column>, labels in obs/__categories/<column>, by reference."""
    categories = group.require_group("__categories")
    if column in categories:
        del categories[column]
    labels = categories.create_dataset(column, data=list(map(str, values.categories)), dtype=h5py.string_dtype())
    labels.attrs["ordered"] = False
    codes = group.create_dataset(column, data=values.codes)
    codes.attrs["categories"] = labels.ref


def plain_strings(f: h5py.File) -> None:
    """anndata 0.13 with pandas 3 writes every string column and index as a `nullable-string-array`,
    which anndata 0.10 (still in many Galaxy tools) cannot read. Rewrite each as the form
    anndata 0.8-0.10 wrote for the same values: a `string-array`, or, with missing values,
    a categorical whose missing entries are unassigned. anndata 0.13 reads both back as strings."""
    from galaxy_cellxgene.frames import encoding_of

    found: list[str] = []
    f.visititems(
        lambda name, node: (
            found.append(name)
            if isinstance(node, h5py.Group) and encoding_of(node) == "nullable-string-array"
            else None
        )
    )
    for name in found:
        node = f[name]
        parent, key = node.parent, name.rsplit("/", 1)[-1]
        values = np.asarray(node["values"].asstr()[()], dtype=object)
        mask = node["mask"][()].astype(bool) if "mask" in node else np.zeros(values.shape, dtype=bool)
        is_index = parent.attrs.get("_index") == key
        if mask.any() and is_index:
            continue  # an index with missing names: no older form holds it; left as written
        del parent[key]
        if not mask.any():
            _string_array(parent, key, values)
            continue
        categories, codes = np.unique(values[~mask].astype(str), return_inverse=True)
        full = np.full(values.shape, -1, dtype=np.int32 if len(categories) > 127 else np.int8)
        full[~mask] = codes
        group = parent.create_group(key)
        group.attrs.update({"encoding-type": "categorical", "encoding-version": "0.2.0", "ordered": False})
        group.create_dataset("codes", data=full)
        _string_array(group, "categories", categories.astype(object))


def _string_array(parent: h5py.Group, key: str, values: np.ndarray) -> None:
    dataset = parent.create_dataset(key, data=values, dtype=h5py.string_dtype())
    dataset.attrs.update({"encoding-type": "string-array", "encoding-version": "0.2.0"})


def merge_into_h5ad(
    source: str | Path,
    output: str | Path,
    labels: pd.DataFrame | None,
    gene_sets: Mapping[str, dict] | None,
    scratch_dir: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `output`: `source` with labels as categorical obs columns and gene sets in uns.

    The file is copied byte for byte (no decode); the label columns are added to obs beside
    the original columns, which stay as their writer stored them, so the anndata version that
    wrote the input reads the output. `output` appears atomically: it is either absent or complete.
    """

    from galaxy_cellxgene.containment import require_self_contained
    from galaxy_cellxgene.durable import replaced_on_success

    output = Path(output)
    # The copy below is byte for byte: an outside part of `source` would come along as a link.
    require_self_contained(source)
    with replaced_on_success(output, scratch_dir, ".merge-") as tmp:
        with h5py.File(source, "r") as f:
            structured = "obs" in f and is_structured(f["obs"])
        if structured:
            _merge_rewritten(source, tmp, labels, gene_sets, overwrite)
        else:
            _merge_in_place(source, tmp, labels, gene_sets, overwrite)
        require_self_contained(tmp, "The merged dataset")
    return output


def _merge_in_place(
    source: str | Path, tmp: Path, labels: pd.DataFrame | None, gene_sets: Mapping[str, dict] | None, overwrite: bool
) -> None:
    from anndata.io import write_elem

    shutil.copyfile(source, tmp)
    with h5py.File(tmp, "r+") as f:
        if labels is not None and len(labels.columns):
            add_label_columns(f["obs"], labels, overwrite=overwrite)
        plain_strings(f)
        if gene_sets:
            uns = f.require_group("uns")
            if GENE_SETS_UNS_KEY in uns:
                del uns[GENE_SETS_UNS_KEY]
            write_elem(uns, GENE_SETS_UNS_KEY, gene_sets_frame(gene_sets))


def _merge_rewritten(
    source: str | Path, tmp: Path, labels: pd.DataFrame | None, gene_sets: Mapping[str, dict] | None, overwrite: bool
) -> None:
    """anndata < 0.7 stored obs/var as structured arrays, which no current anndata writes (nor adds a
    column to). Such files are small and old: read whole by the runtime's anndata and written in the
    current on-disk format, which every anndata from 0.8 on reads. The only merge that loads X."""
    import anndata

    adata = anndata.read_h5ad(source)
    if labels is not None and len(labels.columns):
        adata.obs = add_labels_to_obs(adata.obs, labels, overwrite=overwrite)
    if gene_sets:
        adata.uns[GENE_SETS_UNS_KEY] = gene_sets_frame(gene_sets)
    adata.write_h5ad(tmp)
