"""Resumed cell labels as cellxgene 1.3.0 reads them, without pandas, for the early answers.

cellxgene reads the labels CSV with `pd.read_csv(dtype="category", index_col=0, header=0,
comment="#", keep_default_na=False)`: every category a column of strings (empty stays empty),
its categories the distinct values in sorted order. The runtime's checks (input_files.
check_previous) have already refused a file whose rows are not the dataset's cells in order,
whose names repeat or clash with obs columns. Only the plain shape is read here; anything
where pandas' parser and the csv module could disagree (a `#` after a line's start, a carriage
return, a byte-order mark, a ragged row) raises Unanswerable.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from galaxy_cellxgene.early_frames import Unanswerable


@dataclass(frozen=True)
class Labels:
    """The categories cellxgene adds to obs, in the file's order, each one's value per cell."""

    names: list[str]
    values: dict[str, list[str]]

    def schema(self) -> list[dict]:
        return [
            {"name": name, "writable": True, "type": "categorical", "categories": sorted(set(self.values[name]))}
            for name in self.names
        ]


NO_LABELS = Labels([], {})


def read_labels(path: Path | None) -> Labels:
    if path is None or Path(path).stat().st_size == 0:
        return NO_LABELS
    text = Path(path).read_bytes().decode("utf-8")
    if text.startswith("\ufeff") or "\r" in text:
        raise Unanswerable("a labels file pandas and csv might read apart")
    kept = []
    for line in text.split("\n"):
        if line.startswith("#"):
            continue  # pandas reads a line that starts with the comment character as blank
        if "#" in line:
            raise Unanswerable("a comment after a line's start: pandas cuts the line there")
        kept.append(line)
    rows = [row for row in csv.reader(io.StringIO("\n".join(kept)), strict=True) if row]
    if not rows:
        raise Unanswerable("a labels file without a header")
    header, body = rows[0], rows[1:]
    if any(len(row) != len(header) for row in body) or len(set(header[1:])) != len(header) - 1:
        raise Unanswerable("a ragged labels file")
    names = header[1:]
    if not names:
        return NO_LABELS  # the cells alone: cellxgene's frame is empty, nothing is added
    return Labels(names, {name: [row[i + 1] for row in body] for i, name in enumerate(names)})
