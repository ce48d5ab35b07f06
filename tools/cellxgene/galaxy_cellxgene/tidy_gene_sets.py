"""cellxgene's tidy gene-sets CSV, parsed with the csv module alone (labels.py reads the files with
it; the early answers, which must not import pandas, too).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

GENE_SETS_HEADER = ["gene_set_name", "gene_set_description", "gene_symbol", "gene_description"]


def _rows_with_first_line(text: str) -> Iterator[tuple[list[str], str, int]]:
    """CSV rows, each with the physical line it starts on (csv.reader reads no further ahead)."""
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            consumed.append(line)
            yield line

    reader = csv.reader(lines(), dialect="excel")
    for row in reader:
        first = consumed[0] if consumed else ""
        consumed.clear()
        yield row, first, reader.line_num


def parse_gene_sets(text: str) -> dict[str, dict]:
    gene_sets: dict[str, dict] = {}
    have_header = False
    for row, first_line, lineno in _rows_with_first_line(text):
        if not row or first_line.startswith("#"):
            continue
        if not have_header:
            if row[: len(GENE_SETS_HEADER)] != GENE_SETS_HEADER:
                raise ValueError("Gene set CSV file missing the required column header.")
            have_header = True
            continue
        name, description, symbol, gene_description = [*row, "", "", "", ""][:4]
        if not name:
            raise ValueError(f"Gene set CSV missing required gene set name on line {lineno}")
        gene_set = gene_sets.setdefault(name, {"geneset_name": name, "geneset_description": description, "genes": []})
        if not gene_set["geneset_description"] and description:
            gene_set["geneset_description"] = description
        if symbol:
            gene_set["genes"].append({"gene_symbol": symbol, "gene_description": gene_description})
    return gene_sets
