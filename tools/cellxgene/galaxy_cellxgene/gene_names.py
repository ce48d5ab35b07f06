"""Which var column names the genes when the user leaves the choice empty.

Datasets from CZ CELLxGENE Discover (schema 5 and later), and many pipelines, index genes by
Ensembl ID (ENSG00000198851) and keep the symbols (CD3E) in a column: `feature_name` in Discover,
`gene_symbols` from scanpy's 10x readers, `gene_name`/`gene_names` elsewhere. A user searching for
CD3E should not have to know that: when the index is IDs and such a column holds unique symbols,
it is the default. An explicit choice in the tool form (a column, or the index) always wins.
"""

from __future__ import annotations

import re

import pandas as pd

from galaxy_cellxgene.problems import Summary
from galaxy_cellxgene.settings import ViewerOptions, with_dataset_defaults

# Checked in this order; the first that holds symbols is used.
SYMBOL_COLUMNS = (
    "feature_name",
    "gene_symbols",
    "gene_symbol",
    "gene_name",
    "gene_names",
    "symbol",
    "symbols",
    "Symbol",
    "features",
)
# Ensembl gene IDs of any species (ENSG, ENSMUSG, ENSDARG...), with or without a version suffix.
GENE_ID = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")


def mostly_ids(names: pd.Index | pd.Series, share: float = 0.9) -> bool:
    values = pd.Series(names).astype(str)
    if values.empty:
        return False
    return float(values.str.match(GENE_ID).mean()) >= share


def symbol_column(index: pd.Index, columns: list[str], column_values) -> str | None:
    """The var column to show as gene names by default, or None (keep the index).

    `column_values(name)` returns a column's values; only candidates are read."""
    if not mostly_ids(index):
        return None
    for name in SYMBOL_COLUMNS:
        if name in columns:
            values = pd.Series(column_values(name)).astype(str)
            if not mostly_ids(values, share=0.5):
                return name
    return None


def choose_gene_names(var, options: ViewerOptions, summary: Summary) -> ViewerOptions:
    """Sets the summary's default gene-name column (and why); returns the options the checks use."""
    column = symbol_column(var.index, [str(c) for c in var.columns], lambda name: var[name])
    values = pd.Index(var[column].astype(str)) if column is not None else pd.Index([])
    if column is not None and not options.make_var_names_unique and not values.is_unique:
        dup = ", ".join(repr(d) for d in values[values.duplicated()].unique()[:3])
        summary.var_names_note = (
            f"var column '{column}' holds gene symbols but some repeat (e.g. {dup}); the var index is used. "
            "Turn on 'make gene names unique' to use the symbols."
        )
        column = None
    elif column is not None:
        summary.var_names_note = "var column of gene symbols; the var index holds gene IDs"
    summary.default_var_names = column
    summary.var_names_defaulted = column is not None and not options.var_names
    return with_dataset_defaults(options, column)
