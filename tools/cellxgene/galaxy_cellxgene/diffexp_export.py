"""Differential expression results, captured on the server for the user's Galaxy history.

cellxgene computes differential expression on the server (`POST api/v0.2/diffexp/obs`) and the
page only draws the answer, so the runtime sees both the request (the two cell sets) and the
answer (the top genes) without any change to cellxgene's frontend. Each successful comparison
is kept here; "Export to Galaxy" and "Finish" upload every comparison not yet exported as one
tabular dataset (galaxy_export.py does the upload).

What the rows mean is cellxgene's own computation (server/common/compute/diffexp_generic.py):
for each gene, the difference of the two sets' mean expression (log fold change: the data are
taken as log-scaled; a count matrix is log1p-transformed first), Welch's t-test with both
variances divided by the smaller set's size, two-sided p-value, Bonferroni-adjusted p-value
(p-value times the number of genes, capped at 1). The top N genes by t-score in each direction
are returned, among genes whose |log fold change| exceeds the cutoff (`--diffexp-lfc-cutoff`,
0.01 by default) when there are enough of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from galaxy_cellxgene import cellxgene_internals as cx

log = logging.getLogger("galaxy_cellxgene.diffexp")

COLUMNS = ("gene", "log_fold_change", "p_value", "adjusted_p_value", "higher_in", "set_1", "set_2")
# A name is only given when a set is exactly the cells of one value; checking every column of a
# wide obs table would cost more than the comparison itself.
MAX_NAMING_COLUMNS = 64


@dataclass
class Comparison:
    number: int
    key: str  # the two cell sets: the same comparison asked twice is kept once
    set_1: str
    set_2: str
    rows: list[tuple[str, float, float, float, str]]
    made: float = field(default_factory=time.time)
    exported: bool = False

    def table(self) -> str:
        lines = ["#" + "\t".join(COLUMNS)]
        for gene, lfc, pval, padj, higher in self.rows:
            texts = [_text(c) for c in (gene, higher, self.set_1, self.set_2)]
            cells = (texts[0], _num(lfc), _num(pval), _num(padj), *texts[1:])
            lines.append("\t".join(cells))
        return "\n".join(lines) + "\n"

    def title(self) -> str:
        return f"{self.set_1} vs {self.set_2}"


class DiffexpLog:
    """Comparisons of one session, in the order they were made (thread-safe)."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = Path(work_dir) / "diffexp"
        self._lock = threading.Lock()
        self.comparisons: list[Comparison] = []

    def add(self, key: str, set_1: str, set_2: str, rows: list[tuple[str, float, float, float, str]]) -> Comparison:
        with self._lock:
            for old in self.comparisons:
                if old.key == key:
                    old.rows, old.set_1, old.set_2, old.made = rows, set_1, set_2, time.time()
                    return old
            comparison = Comparison(len(self.comparisons) + 1, key, set_1, set_2, rows)
            self.comparisons.append(comparison)
            return comparison

    def pending(self) -> list[Comparison]:
        with self._lock:
            return [c for c in self.comparisons if not c.exported]

    def write(self, comparison: Comparison) -> Path:
        """The comparison as a file to upload (tab-separated, one header line starting with #)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / f"diffexp-{comparison.number}.tsv"
        path.write_text(comparison.table(), encoding="utf-8")
        return path

    def mark_exported(self, comparisons: list[Comparison]) -> None:
        with self._lock:
            for comparison in comparisons:
                comparison.exported = True


def record(app, diffexp_log: DiffexpLog, data_adaptor, labels: Callable[[], object] | None = None) -> None:
    """Wrap cellxgene's diffexp view: every 200 answer is recorded with its two cell sets."""

    def wrap(view):
        def recorded(*args, **kwargs):
            from flask import make_response, request

            response = make_response(view(*args, **kwargs))
            if response.status_code == 200:
                try:
                    _capture(diffexp_log, data_adaptor, request.get_json(silent=True), response.get_data(), labels)
                except Exception:  # the user's answer comes first; a failed capture is only logged
                    log.exception("differential expression result not recorded")
            return response

        return recorded

    cx.wrap_view(app, cx.DIFFEXP_ENDPOINT, wrap)


def _capture(diffexp_log: DiffexpLog, data_adaptor, body, answer: bytes, labels) -> None:
    result = json.loads(answer)
    masks = [cx.obs_mask(data_adaptor, body[s]["filter"]["obs"]) for s in ("set1", "set2")]
    names = [set_name(i + 1, mask, data_adaptor, labels) for i, mask in enumerate(masks)]
    genes = cx.gene_names(data_adaptor)
    rows: list[tuple[str, float, float, float, str]] = []
    for direction, higher in (("positive", names[0]), ("negative", names[1])):
        for var_index, lfc, pval, padj in result.get(direction, []):
            rows.append((genes[int(var_index)], float(lfc), float(pval), float(padj), higher))
    key = hashlib.sha256(b"".join(np.packbits(m).tobytes() for m in masks)).hexdigest()
    comparison = diffexp_log.add(key, names[0], names[1], rows)
    log.info("differential expression %d recorded: %s", comparison.number, comparison.title())


def set_name(number: int, mask: np.ndarray, data_adaptor, labels: Callable[[], object] | None) -> str:
    """`louvain: 1 (46 cells)` when the set is exactly the cells of one category value (a
    categorical obs column or one of the user's own label categories), else `set 1 (46 cells)`."""
    count = int(np.count_nonzero(mask))
    cells = f"{count} cell" + ("" if count == 1 else "s")
    if count:
        for column, codes, categories in _categorical_columns(data_adaptor, labels):
            if len(codes) != len(mask):
                continue
            chosen = codes[mask]
            first = chosen[0]
            if first >= 0 and (chosen == first).all() and int(np.count_nonzero(codes == first)) == count:
                return f"{column}: {categories[first]} ({cells})"
    return f"set {number} ({cells})"


def _categorical_columns(data_adaptor, labels):
    """(name, integer codes per cell, category names) of the categorical columns, user labels first."""
    frames = []
    if labels is not None:
        try:
            user = labels()
            if user is not None and len(user.columns):
                frames.append(user)
        except Exception:  # no labels yet, or annotations off
            log.debug("no user labels to name the sets with", exc_info=True)
    frames.append(cx.obs_frame(data_adaptor))
    seen = 0
    for frame in frames:
        for column in frame.columns:
            series = frame[column]
            if str(series.dtype) == "category":
                codes, categories = series.cat.codes.to_numpy(), [str(c) for c in series.cat.categories]
            elif str(series.dtype) in ("bool", "boolean"):
                codes, categories = series.to_numpy(dtype=bool).astype(np.int8), ["False", "True"]
            else:
                continue
            seen += 1
            if seen > MAX_NAMING_COLUMNS:
                return
            yield str(column), codes, categories


def _num(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else str(value)


_CONTROL = re.compile(r"[\t\r\n]+")


# Spreadsheets evaluate a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@")


def _clean(text: str) -> str:
    """One cell of a tab-separated line: tabs and line breaks in names become spaces."""
    return _CONTROL.sub(" ", str(text))


def _text(name: object) -> str:
    """A name (gene, cell set) as a cell: cleaned, and quoted with a leading ' where a spreadsheet
    opening the exported table would otherwise run it as a formula (docs/security.md). Numbers
    are written by _num and never quoted."""
    text = _clean(str(name))
    return "'" + text if text.lstrip(" ").startswith(FORMULA_STARTS) else text
