"""Checks of the files around a dataset: is it HDF5, does any part of it live in another file
(containment.py), and does earlier work (annotations, gene sets) fit it. Used by validate.inspect
and by the merge command."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from galaxy_cellxgene.codes_range import code_problems
from galaxy_cellxgene.containment import outside_references
from galaxy_cellxgene.labels import LabelsError, read_gene_sets, read_labels
from galaxy_cellxgene.problems import Inspection, Problem, Summary
from galaxy_cellxgene.settings import ViewerOptions
from galaxy_cellxgene.sparse_structure import matrix_problems


def not_hdf5_problem(path: Path) -> Problem:
    head = b""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as err:
        return Problem("error", f"The input cannot be read ({err.strerror}).", "Check that the dataset exists.")
    hint = "it is empty" if not head else f"it starts with {head[:8]!r}"
    return Problem(
        "error",
        f"The input is not an HDF5 file, so it cannot be an h5ad (AnnData) file: {hint}.",
        "Choose an h5ad dataset; convert other formats first (e.g. with the anndata 'Import' "
        "or scanpy read tools) and check the dataset's datatype.",
    )


def outside_data_problems(path: str | Path, role: str) -> list[Problem]:
    """One error per refused object of an HDF5 file (containment.py): parts in other files, and
    whatever else the scan refuses."""
    try:
        references = outside_references(path)
    except (OSError, KeyError, RuntimeError, ValueError) as err:
        return [
            Problem(
                "error",
                f"{role} could not be scanned for parts stored in other files ({type(err).__name__}: {err}); "
                "it may be truncated or damaged.",
                "Re-upload the dataset or re-run the tool that made it.",
            )
        ]
    return [Problem("error", r.describe(role), r.fix) for r in references]


def merge_input_problems(path: str | Path) -> list[Problem]:
    """What the merge refuses in its input: refused objects (the scan), then, in a readable file,
    a malformed sparse X or categorical codes out of range (the merged copy would carry them)."""
    refused = outside_data_problems(path, "The dataset")
    if refused:
        return refused
    with h5py.File(path, "r") as f:
        x = f.get("X")
        shape = x.attrs.get("shape") if isinstance(x, h5py.Group) else None
        found = code_problems(f)
        if shape is not None and len(shape) == 2:
            found = matrix_problems(f, None, int(shape[0]), int(shape[1])) + found
    return found


def previous_file_problems(path: str | Path, role: str) -> list[Problem]:
    """Earlier annotations and gene sets are CSV; an HDF5 file there is refused, naming any outside parts."""
    if not h5py.is_hdf5(path):
        return []
    return outside_data_problems(path, role) or [
        Problem(
            "error",
            f"{role} is an HDF5 file, not a cellxgene CSV.",
            "Choose the 'cell annotations' or 'gene sets' CSV dataset an earlier cellxgene run made.",
        )
    ]


def check_previous(options: ViewerOptions, inspection: Inspection) -> None:
    problems = inspection.problems
    obs_names = inspection.obs_names
    refused_labels = (
        previous_file_problems(options.previous_annotations, "The previous annotations")
        if options.previous_annotations
        else []
    )
    refused_sets = (
        previous_file_problems(options.previous_gene_sets, "The previous gene sets")
        if options.previous_gene_sets
        else []
    )
    problems.extend(refused_labels + refused_sets)
    if options.previous_annotations and not refused_labels:
        try:
            labels = read_labels(options.previous_annotations)
        except LabelsError as err:
            problems.append(Problem("error", f"The previous annotations cannot be used: {err}", err.fix))
        else:
            inspection.summary.user_categories = [str(c) for c in labels.columns]
            # No categories (cellxgene writes 0 bytes when all were deleted): nothing to fit.
            if len(labels.columns) and obs_names is not None:
                _check_labels_fit(labels, obs_names, inspection.summary, problems)
    if options.previous_gene_sets and not refused_sets:
        try:
            gene_sets = read_gene_sets(options.previous_gene_sets)
        except LabelsError as err:
            problems.append(Problem("error", f"The previous gene sets cannot be used: {err}", err.fix))
        else:
            inspection.summary.gene_sets = sorted(gene_sets)


def _check_labels_fit(labels: pd.DataFrame, obs_names: pd.Index, summary: Summary, problems: list[Problem]) -> None:
    if len(labels) != len(obs_names):
        problems.append(
            Problem(
                "error",
                f"The previous annotations have {len(labels)} rows but the dataset has {len(obs_names)} cells: "
                "they were made on another dataset.",
                "Choose the annotations saved from this same dataset (or subset the dataset the same way).",
            )
        )
        return
    file_names = pd.Index(labels.index.astype(str))
    mismatch = np.flatnonzero(file_names != obs_names)
    if mismatch.size:
        first = int(mismatch[0])
        problems.append(
            Problem(
                "error",
                f"The previous annotations name other cells ({mismatch.size} of {len(obs_names)} rows differ; "
                f"row {first + 1} is '{file_names[first]}' but the dataset has '{obs_names[first]}'): "
                "they were made on another dataset or with another cell-name column.",
                "Choose the annotations saved from this dataset, with the same cell-name column.",
            )
        )
    clash = sorted(set(map(str, labels.columns)) & set(summary.obs_columns))
    if clash:
        problems.append(
            Problem(
                "error",
                f"The previous annotation categories {clash} have the same names as obs columns; "
                "cellxgene cannot show both.",
                "Rename those categories in the annotations CSV (header line), or use the merged h5ad, "
                "which already holds them, without previous annotations.",
            )
        )
