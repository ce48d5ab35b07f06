"""Read-only checks of an h5ad against what cellxgene 1.3.0 needs.

Every problem is collected (not just the first), each says what is wrong and how to fix it,
because a Galaxy user gets one job log per attempt. Only metadata is read (h5py, plus the
small obs/var frames and embeddings), so checking a large dataset costs little.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from galaxy_cellxgene.codes_range import code_problems
from galaxy_cellxgene.frames import FrameError, column_kind, encoding_of
from galaxy_cellxgene.gene_names import choose_gene_names
from galaxy_cellxgene.input_files import check_previous, not_hdf5_problem, outside_data_problems
from galaxy_cellxgene.legacy_frame import frame_of
from galaxy_cellxgene.obsm import SPATIAL_KEY, SPATIAL_NOTE, coordinates, entries, read_default_embedding, spatial_name
from galaxy_cellxgene.problems import Embedding, Inspection, Problem, Summary
from galaxy_cellxgene.settings import ViewerOptions, embedding_name
from galaxy_cellxgene.sparse_structure import matrix_problems


def _matrix_shape(node: h5py.Group | h5py.Dataset) -> tuple[int, int] | None:
    if isinstance(node, h5py.Dataset):
        return tuple(node.shape) if node.ndim == 2 else None  # type: ignore[return-value]
    shape = node.attrs.get("shape", node.attrs.get("h5sparse_shape"))
    return (int(shape[0]), int(shape[1])) if shape is not None else None


def _matrix_dtype(node: h5py.Group | h5py.Dataset) -> np.dtype:
    return node.dtype if isinstance(node, h5py.Dataset) else node["data"].dtype


def _duplicates(index: pd.Index, limit: int = 3) -> str:
    dup = index[index.duplicated()].unique()[:limit]
    return ", ".join(repr(str(d)) for d in dup)


def inspect(path: str | Path, options: ViewerOptions, thorough: bool = True) -> Inspection:
    """Every problem at once. `thorough=False` skips reading all cell names when nothing else
    needs them: cellxgene checks their uniqueness itself while loading, and on that failure
    the caller runs the thorough check to report everything (see cli.run_view)."""
    path = Path(path)
    summary = Summary()
    problems: list[Problem] = []
    if not h5py.is_hdf5(path):
        return Inspection(summary, [not_hdf5_problem(path)])
    # Before anything reads the file: a part stored elsewhere would be read transparently.
    outside = outside_data_problems(path, "The dataset")
    if outside:
        return Inspection(summary, outside)
    try:
        with h5py.File(path, "r") as f:
            readable, obs_names = _inspect_file(f, options, summary, problems, thorough)
    except (OSError, KeyError, RuntimeError, ValueError) as err:
        # h5py's answers to damaged files (missing objects, dangling links, bad heaps, undecodable names).
        problems.append(
            Problem(
                "error",
                f"The HDF5 file could not be read ({type(err).__name__}: {err}); it may be truncated or damaged.",
                "Re-upload the dataset or re-run the tool that made it.",
            )
        )
        return Inspection(summary, problems)
    inspection = Inspection(summary, problems, obs_names)
    if readable:
        check_previous(options, inspection)
    return inspection


def _is_anndata(f: h5py.File) -> bool:
    """anndata >= 0.8 says so in the root's attributes; older writers always wrote obs and var."""
    return encoding_of(f) == "anndata" or ("obs" in f and "var" in f)


def _inspect_file(
    f: h5py.File, options: ViewerOptions, summary: Summary, problems: list[Problem], thorough: bool = True
) -> tuple[bool, pd.Index | None]:
    if not _is_anndata(f):
        missing = [key for key in ("X", "obs", "var") if key not in f]
        problems.append(
            Problem(
                "error",
                f"The HDF5 file is not an AnnData (h5ad) file: it has no {', '.join('/' + m for m in missing)}"
                f" (top-level keys: {', '.join(sorted(f.keys())) or 'none'}).",
                "Choose an h5ad dataset written by anndata or scanpy; a loom, 10x .h5 or generic HDF5 "
                "file must be converted to h5ad first.",
            )
        )
        return False, None
    # Every blocker is named at once: a user who fixes one must not be refused again for the next.
    obs = _frame_or_problem(f, "obs", problems)
    var = _frame_or_problem(f, "var", problems)
    if obs is not None:
        summary.n_obs = len(obs)
    if var is not None:
        summary.n_vars = len(var)
    if obs is not None and summary.n_obs == 0:
        problems.append(
            Problem(
                "error",
                "The dataset has no cells (obs is empty); cellxgene cannot open it.",
                "Check the step that made this dataset (often a filter that removed every cell).",
            )
        )
    _inspect_x(f, options, summary, problems, known_shape=obs is not None and var is not None)
    # Before any reader hands X or a column's codes to compiled code (issue 22).
    problems.extend(matrix_problems(f, options.layer, summary.n_obs, summary.n_vars) + code_problems(f))
    _inspect_layer(f, options, summary, problems)
    _inspect_embeddings(f, options, summary, problems, known_rows=obs is not None)
    if obs is None or var is None:
        return False, None
    options = choose_gene_names(var, options, summary)
    need_obs_names = thorough or options.obs_names or options.previous_annotations
    obs_names = _inspect_names(obs, "obs", options.obs_names, False, problems) if need_obs_names else None
    _inspect_names(var, "var", options.var_names, options.make_var_names_unique, problems)
    _inspect_categories(obs, options, summary, problems)
    _inspect_column_types(obs, var, summary, problems)
    summary.var_columns = [str(c) for c in var.columns]
    if not obs.columns.is_unique or not var.columns.is_unique:
        problems.append(
            Problem(
                "error",
                "Some obs or var column names appear twice.",
                "Rename the duplicated columns so every column name is unique.",
            )
        )
    return True, obs_names


def _frame_or_problem(f: h5py.File, axis: str, problems: list[Problem]):
    what = "cell" if axis == "obs" else "gene"
    if axis not in f:
        problems.append(
            Problem(
                "error",
                f"The dataset has no {axis} (the {what} table); cellxgene needs one row per {what}.",
                f"Re-save the dataset with anndata (adata.write_h5ad) so that it has its {axis} table.",
            )
        )
        return None
    try:
        return frame_of(f[axis])
    except (FrameError, KeyError, OSError) as err:
        problems.append(
            Problem(
                "error",
                f"{axis} cannot be read as an AnnData dataframe ({type(err).__name__}: {err}).",
                f"Re-save the dataset with anndata (read it with anndata.read_h5ad and write it with "
                f"write_h5ad) so that {axis} is written as a dataframe.",
            )
        )
        return None


def _inspect_x(
    f: h5py.File, options: ViewerOptions, summary: Summary, problems: list[Problem], known_shape: bool = True
) -> None:
    if "X" not in f:  # anndata writes none when X is None
        summary.x_encoding, summary.x_dtype = "absent", "unknown"
        layers = sorted(f["layers"].keys()) if isinstance(f.get("layers"), h5py.Group) else []
        if options.layer:
            return
        if layers:
            problems.append(
                Problem(
                    "error",
                    f"The dataset has no X matrix, only layers ({', '.join(layers)}).",
                    "Choose one of the layers to show as the expression values (the 'layer' option).",
                )
            )
            return
        raw = "raw/X" in f or "raw.X" in f
        problems.append(
            Problem(
                "error",
                "The dataset has no expression values: it is an AnnData file written with X=None "
                "(no /X) and it has no layers.",
                (
                    "Its raw.X holds values: copy them in upstream (adata.X = adata.raw.X) and re-save."
                    if raw
                    else "Add the expression matrix upstream (adata.X = ..., or a layer) and re-save; "
                    "cellxgene shows the values of genes and cannot open a dataset without them."
                ),
            )
        )
        return
    x = f["X"]
    shape = _matrix_shape(x)
    summary.x_encoding = encoding_of(x) or ("array" if isinstance(x, h5py.Dataset) else "group")
    try:
        summary.x_dtype = str(_matrix_dtype(x))
    except KeyError:
        summary.x_dtype = "unknown"
    if shape is not None and known_shape and shape != (summary.n_obs, summary.n_vars):
        problems.append(
            Problem(
                "error",
                f"X has shape {shape} but obs has {summary.n_obs} rows and var {summary.n_vars}.",
                "The file is inconsistent; re-create it with anndata.",
            )
        )
    if summary.x_dtype != "unknown" and np.dtype(summary.x_dtype).kind not in "fiu":
        problems.append(
            Problem(
                "error",
                f"X holds {summary.x_dtype} values; cellxgene needs numbers.",
                "Store expression values as float or integer.",
            )
        )


def _inspect_names(
    frame: pd.DataFrame, axis: str, column: str | None, make_unique: bool, problems: list[Problem]
) -> pd.Index:
    what = "cell" if axis == "obs" else "gene"
    option = "cell-name column" if axis == "obs" else "gene-symbol column"
    if column:
        if column not in frame.columns:
            choices = ", ".join(map(str, list(frame.columns)[:12])) or "none"
            problems.append(
                Problem(
                    "error",
                    f"The {option} '{column}' is not a column of {axis} (columns: {choices}).",
                    f"Choose one of the existing {axis} columns, or leave the {option} empty to use the index.",
                )
            )
            return frame.index.astype(str)
        names = pd.Index(frame[column].astype(str))
        source = f"{axis} column '{column}'"
    else:
        names = pd.Index(frame.index.astype(str))
        source = f"{axis} index ({axis}_names)"
    if not names.is_unique and not make_unique:
        count = int(names.duplicated().sum())
        fix = (
            "Turn on 'make gene names unique', choose another gene-symbol column, or make them unique upstream."
            if axis == "var"
            else "Choose a cell-name column with unique values, or run obs_names_make_unique upstream."
        )
        problems.append(
            Problem(
                "error",
                f"{count} {what} names in the {source} are duplicated (e.g. {_duplicates(names)}); "
                f"cellxgene needs unique {what} names.",
                fix,
            )
        )
    return names


def _inspect_column_types(obs, var, summary: Summary, problems: list[Problem]) -> None:
    """pandas' nullable columns (Int64, boolean, string; anndata 0.13 writes every string so):
    cellxgene 1.3.0 cannot load them as written, so the prepared file shows them converted."""
    for axis, frame in (("obs", obs), ("var", var)):
        for change in frame.presentation():
            what = "index" if change.column == "the index" else f"column '{change.column}'"
            summary.presented.append(f"{axis} {what} ({change.encoding}): shown as {change.shown_as}")
        for column, reason in frame.unreadable().items():
            summary.hidden.append(f"{axis} column '{column}': {reason}")
            problems.append(
                Problem(
                    "warning",
                    f"{axis} column '{column}' cannot be shown by cellxgene ({reason}); the rest opens.",
                    f"To see it, convert it upstream to numbers, text or categories, e.g. "
                    f"adata.{axis}['{column}'] = adata.{axis}['{column}'].astype(str).",
                )
            )


def _inspect_layer(f: h5py.File, options: ViewerOptions, summary: Summary, problems: list[Problem]) -> None:
    summary.layers = sorted(f["layers"].keys()) if "layers" in f else []
    if not options.layer:
        return
    if options.layer not in summary.layers:
        problems.append(
            Problem(
                "error",
                f"The layer '{options.layer}' does not exist (layers: {', '.join(summary.layers) or 'none'}).",
                "Type the name of an existing layer, or leave it empty to show X.",
            )
        )
        return
    shape = _matrix_shape(f["layers"][options.layer])
    if shape is not None and shape != (summary.n_obs, summary.n_vars):
        problems.append(
            Problem("error", f"The layer '{options.layer}' has shape {shape}.", "Choose a layer shaped like X.")
        )


def _inspect_embeddings(
    f: h5py.File, options: ViewerOptions, summary: Summary, problems: list[Problem], known_rows: bool = True
) -> None:
    found = entries(f)
    keys = [e.key for e in found]
    for entry in found:
        key, shape = entry.key, entry.shape
        if not entry.is_array:
            reason = f"{entry.not_array}, not a 2-D array of coordinates" if entry.not_array else "not a 2-D array"
            summary.embeddings.append(Embedding(key, (), False, reason))
            continue
        spatial = key == SPATIAL_KEY
        if not key.startswith("X_") and not spatial:
            summary.embeddings.append(Embedding(key, shape, False, "name does not start with X_"))
            continue
        rows_ok = shape[0] == summary.n_obs or not known_rows
        if entry.dtype_kind not in "fiu" or not rows_ok or shape[1] < 2:
            summary.embeddings.append(Embedding(key, shape, False, "not a numeric n_cells x 2+ array"))
            continue
        # cellxgene draws two dimensions and the runtime hands it only those (prepare.py).
        coords = coordinates(f, key)
        if np.isinf(coords).any() if coords.dtype.kind == "f" else False:
            summary.embeddings.append(Embedding(key, shape, False, "contains infinite values"))
            continue
        nan_rows = int(np.isnan(coords).any(axis=1).sum()) if coords.dtype.kind == "f" else 0
        if nan_rows == len(coords) > 0:
            summary.embeddings.append(Embedding(key, shape, False, "all values are NaN"))
            continue
        if spatial:
            summary.embeddings.append(Embedding(key, shape, True, shown_as=spatial_name(keys), note=SPATIAL_NOTE))
        else:
            summary.embeddings.append(Embedding(key, shape, True))
        if nan_rows:
            problems.append(
                Problem(
                    "warning",
                    f"Embedding '{key}' has NaN coordinates for {nan_rows} of {len(coords)} cells; "
                    "cellxgene will not draw those cells in it.",
                    "Recompute the embedding, or subset to the cells that have coordinates.",
                )
            )

    wanted = [embedding_name(e) for e in options.embeddings]
    usable = {e.viewer_name for e in summary.embeddings if e.shown}
    for name in wanted:
        if name not in usable:
            match = next((e for e in summary.embeddings if e.name in (name, f"X_{name}")), None)
            reason = match.reason if match else "it does not exist"
            problems.append(
                Problem(
                    "error",
                    f"The embedding '{name}' cannot be shown: {reason}.",
                    f"Choose among the usable embeddings: {', '.join(sorted(usable)) or 'none'}.",
                )
            )
    read_default_embedding(f, summary)
    if wanted:
        for embedding in summary.embeddings:
            if embedding.shown and embedding.viewer_name not in wanted:
                embedding.shown, embedding.reason = False, "not selected"
    if not usable:
        refused = "; ".join(f"{e.name}: {e.reason}" for e in summary.embeddings) or "obsm is empty"
        problems.append(
            Problem(
                "error",
                f"No embedding cellxgene can draw ({refused}).",
                "cellxgene needs at least one obsm entry named X_<name> (e.g. X_umap), or tissue "
                "coordinates in obsm['spatial'], with finite coordinates for every cell; compute a "
                "UMAP/tSNE first (e.g. scanpy's pp.neighbors and tl.umap), or rename the obsm key to start with X_.",
            )
        )


def _inspect_categories(obs, options: ViewerOptions, summary: Summary, problems: list[Problem]) -> None:
    limit = int(options.max_category_items)
    unreadable = obs.unreadable()
    for column in obs.columns:
        if column in unreadable:
            continue
        kind, n, dtype = column_kind(obs, column)
        if kind == "continuous":
            summary.obs_columns[str(column)] = f"continuous ({dtype})"
            continue
        summary.obs_columns[str(column)] = f"categorical, {n} values"
        if n is not None and n > limit:
            problems.append(
                Problem(
                    "warning",
                    f"obs column '{column}' has {n} categories, more than the limit of {limit}; "
                    "cellxgene will not offer it for colouring.",
                    "Raise 'max category items' if you need it.",
                )
            )
