"""cellxgene's cell-label and gene-set CSV files: read and render (merge.py puts them into an h5ad).

The formats are cellxgene's own (two `#` comment lines, then a header), so files written
here load back into cellxgene and files from any cellxgene load here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

# The tidy gene-sets format's parser needs no pandas: the early answers use it too (tidy_gene_sets.py).
from galaxy_cellxgene.tidy_gene_sets import GENE_SETS_HEADER, parse_gene_sets


class LabelsError(ValueError):
    """A user-supplied annotations or gene-sets file that cannot be used, with the fix."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


def read_labels(path: str | Path) -> pd.DataFrame:
    """Read a cellxgene cell-labels CSV exactly as cellxgene does; empty file -> no categories."""
    path = Path(path)
    if path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        labels = pd.read_csv(path, dtype="category", index_col=0, header=0, comment="#", keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise LabelsError(
            f"it is not a cellxgene annotations CSV ({type(err).__name__}: {str(err).strip()[:200]}).",
            "Use the 'cell annotations' CSV that cellxgene saved (first column: cell names, then one "
            "column per category).",
        ) from err
    if labels.index.name is None and len(labels.columns) == 0 and len(labels) == 0:
        raise LabelsError("it has no header line.", "Use a CSV whose header is 'index,<category>,...'.")
    # pandas renames a repeated header name to `name.1`, so look at the raw header line.
    header = pd.read_csv(path, header=None, nrows=1, comment="#", dtype=str, keep_default_na=False)
    if not labels.columns.is_unique or not pd.Index(header.iloc[0, 1:]).is_unique:
        raise LabelsError("two categories have the same name.", "Rename one of them in the header line.")
    if not labels.index.is_unique:
        raise LabelsError("some cell names appear twice.", "Each cell must appear once, in dataset order.")
    blank = [str(c) for c in labels.columns if not str(c).strip() or str(c).startswith("Unnamed:")]
    if blank:
        raise LabelsError("a category has no name in the header line.", "Give every category a name.")
    return labels


def labels_csv(labels: pd.DataFrame, header: str) -> str:
    """cellxgene's CSV format; with no categories left we still write the cell column, never 0 bytes."""
    out = io.StringIO()
    out.write(header)
    frame = labels
    if frame.empty and len(frame.columns) == 0:
        frame = pd.DataFrame(index=labels.index)
    if frame.index.name is None:
        frame = frame.rename_axis("index")
    if str(frame.index.name) in map(str, frame.columns):
        # `index,index` would read back as a category renamed `index.1`; an unnamed index does not.
        frame = frame.rename_axis(None)
    # cellxgene reads with comment="#": an unquoted '#' cuts the line short and a bare '\r' ends it.
    # Quoted, both read back (pandas honours quotes); other files stay byte-identical to cellxgene's.
    if _needs_quotes(frame):
        frame.to_csv(out, quoting=csv.QUOTE_ALL)
    else:
        rows = _rows_from_distinct_values(frame)
        if rows is None:
            frame.to_csv(out, quoting=csv.QUOTE_MINIMAL)
        else:
            out.write(rows)
    return out.getvalue()


def _encode_fields(values: Iterable[str]) -> list[str]:
    """Each value as the csv module writes it inside a row (QUOTE_MINIMAL), as pandas' to_csv does."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    encoded = []
    for value in values:
        out.seek(0)
        out.truncate()
        # Two copies make a row of two fields: the csv module quotes a lone empty field, pandas' rows never have one.
        writer.writerow([value, value])
        text = out.getvalue()
        encoded.append(text[: (len(text) - 2) // 2])
    return encoded


def _is_text(values: pd.Index) -> bool:
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty")


def _rows_from_distinct_values(frame: pd.DataFrame) -> str | None:
    """What `frame.to_csv(quoting=QUOTE_MINIMAL)` writes, for text labels, built ~3x faster.

    A label save rewrites every cell (500k rows: pandas' writer took 0.3 s of a 0.56 s save).
    Labels repeat, so each distinct label is encoded once and rows are joined from the codes;
    cell names that need no quoting are written as they are. Anything else returns None and
    pandas writes it: the property tests compare both writers byte for byte.
    """
    if not _is_text(frame.index):
        return None
    names = frame.index.tolist()
    lines = "\n".join(names)
    if any(special in lines for special in ',"\r') or lines.count("\n") != max(0, len(names) - 1):
        return None  # a name that needs quoting (or holds a line break)
    label = "" if frame.index.name is None else str(frame.index.name)
    if len(frame.columns) == 0:
        # Rows of one field (the outputs before any label): the csv module quotes a lone empty one.
        if not label or (names and "\n\n" in f"\n{lines}\n"):
            return None
        return f"{label}\n{lines}\n" if names else f"{label}\n"
    columns = []
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes, distinct = values.cat.codes.to_numpy(), values.cat.categories
        elif values.dtype == object:
            codes, distinct = pd.factorize(values, use_na_sentinel=True)
            distinct = pd.Index(distinct, dtype=object)
        else:
            return None
        if not _is_text(distinct):
            return None
        # pandas writes a missing label as na_rep="": code -1 picks the last entry.
        encoded = np.array([*_encode_fields(distinct.tolist()), ""], dtype=object)
        columns.append(encoded[codes].tolist())
    header = ",".join(_encode_fields([label, *map(str, frame.columns)]))
    return header + "\n" + "\n".join(map(",".join, zip(names, *columns, strict=True))) + "\n"


def _needs_quotes(frame: pd.DataFrame) -> bool:
    # One joined string searched in C: a loop over every cell name cost ~0.18 s per save at 500k cells.
    texts = [str(frame.index.name), *map(str, frame.columns), "\n".join(frame.index.astype(str))]
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            texts.extend(map(str, values.cat.categories))
        else:
            texts.extend(map(str, values.dropna().unique()))
    joined = "\n".join(texts)
    return "#" in joined or "\r" in joined


def read_gene_sets(path: str | Path) -> dict[str, dict]:
    """cellxgene's tidy gene-sets CSV, by cellxgene's rules, with one difference.

    cellxgene's reader treats every row whose first field starts with '#' as a comment, so a
    gene set its own UI lets you name "#1 markers" is silently dropped on resume and merge.
    Here '#' starts a comment only on an unquoted line; gene_sets_csv quotes such names.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        return {}
    try:
        # Bytes, then decode: read_text would turn a quoted '\r' in a description into '\n'.
        return parse_gene_sets(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, csv.Error) as err:
        raise LabelsError(
            f"it is not a cellxgene gene-sets CSV ({err}).",
            f"The header must be '{','.join(GENE_SETS_HEADER)}'; use the 'gene sets' CSV cellxgene saved.",
        ) from err


def gene_sets_csv(gene_sets: Mapping[str, dict] | Iterable[dict], header: str) -> str:
    """cellxgene's CSV format, byte for byte, except that rows are quoted when a name starts with '#'."""
    values = list(gene_sets.values() if isinstance(gene_sets, Mapping) else gene_sets)
    needs_quotes = any(str(g["geneset_name"]).startswith("#") for g in values)
    out = io.StringIO(newline="")
    out.write(header)
    writer = csv.writer(out, dialect="excel", quoting=csv.QUOTE_ALL if needs_quotes else csv.QUOTE_MINIMAL)
    writer.writerow(GENE_SETS_HEADER)
    for gene_set in values:
        name = gene_set["geneset_name"]
        description = gene_set.get("geneset_description", "")
        if not gene_set["genes"]:
            writer.writerow([name, description, "", ""])
        for gene in gene_set["genes"]:
            writer.writerow([name, description, gene["gene_symbol"], gene.get("gene_description", "")])
    return out.getvalue()
