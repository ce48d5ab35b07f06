"""The page's first answers, from h5py, before cellxgene (and pandas, anndata, Flask) is imported.

Issue 25, "cells first": a view shows no cell until Python has imported cellxgene's stack and
cellxgene has loaded obs. The early front (served right after the checks) asks `EarlyAnswers`
for the requests the page makes first: the schema, the colors, the gene sets, one obs column at
a time, the gene names, the first embedding. Each answer is what cellxgene's app, as
app.build_session builds it, would send for this prepared file and these settings, or None when
that is not certain here: the front then waits for cellxgene. The encoding is early_fbs.py's.

`config` is early_config.py's (cellxgene's but for one per-browser hash); the type rules are
early_types.py's. Never answered early:
- resumed labels in a CSV shape where pandas' parser and the csv module could disagree
  (early_labels.py): then neither the schema nor any obs column is answered early.
- resumed gene sets when the genes are named by a chosen var column: cellxgene looks that
  column up as an attribute of pandas' DataFrame, which a column named like a DataFrame
  attribute would not reach (the index's alias, name_0, always does).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from galaxy_cellxgene.early_config import client_config
from galaxy_cellxgene.early_fbs import FLOAT32, Typed, encode_matrix
from galaxy_cellxgene.early_frames import (
    Frame,
    Unanswerable,
    color_lists,
    embedding,
    matrix_dtype,
    obsm_names,
)
from galaxy_cellxgene.early_labels import Labels, read_labels
from galaxy_cellxgene.early_types import column_type, hex_color, normalized_layout, x_type
from galaxy_cellxgene.session_files import Paths
from galaxy_cellxgene.settings import ViewerOptions, embedding_names, var_names_for_cellxgene
from galaxy_cellxgene.tidy_gene_sets import parse_gene_sets

JSON_TYPE = "application/json"
FBS_TYPE = "application/octet-stream"
MAX_LAYOUTS = 30  # cellxgene's server.common.constants.MAX_LAYOUTS
COLUMN_REQUEST_MAX = 32  # cellxgene's default limits.column_request_max
MAX_CACHED = 512  # answers kept: every column and layout of a large dataset, once
# cellxgene refuses a gene set name with a leading, trailing or doubled space, or outside ASCII 32-126.
ILLEGAL_GENE_SET_NAME = re.compile(r"^\s|  |[\u0000-\u001F\u007F-\uFFFF]|\s$")

Answer = tuple[str, bytes]
log = logging.getLogger("galaxy_cellxgene")
CELL_NAMES = "obs index, read"


def json_body(value: object) -> bytes:
    """As Flask's jsonify writes it outside debug mode."""
    return (json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n").encode()


# ---- the answers -----------------------------------------------------------------------------


class EarlyAnswers:
    """One prepared file's early answers; thread-safe, the file opened on the first answer."""

    def __init__(
        self,
        prepared: Path,
        options: ViewerOptions,
        paths: Paths,
        page_scripts: tuple[str, ...],
        store_serves_genes: bool = False,
    ) -> None:
        self.prepared = Path(prepared)
        self.store_serves_genes = store_serves_genes  # a column store of ours serves X (columns.py)
        self.options = options
        self.paths = paths
        # What build_session adds to the page (settings.page_scripts): no answered route shows it.
        self.page_scripts = page_scripts
        self._lock = threading.RLock()
        self._file: h5py.File | None = None
        self._closed = False
        self._parts: dict[str, object] = {}
        self._cache: dict[tuple, Answer] = {}
        self._routes: dict[str, Callable[[dict[str, list[str]]], Answer]] = {
            "config": lambda query: (JSON_TYPE, json_body(self._config())),
            "schema": lambda query: (JSON_TYPE, json_body({"schema": self._schema()})),
            "colors": lambda query: (JSON_TYPE, json_body(self._colors())),
            "genesets": lambda query: (JSON_TYPE, json_body(self._gene_sets())),
            "annotations/obs": lambda query: (FBS_TYPE, self._annotations(self._obs(), query)),
            "annotations/var": lambda query: (FBS_TYPE, self._annotations(self._var(), query)),
            "layout/obs": lambda query: (FBS_TYPE, self._layout(query)),
        }

    def answer(self, route: str, query: dict[str, list[str]]) -> Answer | None:
        """(content type, body) of cellxgene's answer to GET `route` (after /api/v0.2/), or None.

        As cellxgene answers a browser's Accept: `genesets` as JSON (a `text/csv` Accept is
        the caller's to pass on), the matrices as application/octet-stream."""
        handler = self._routes.get(route.strip("/"))
        if handler is None:
            return None
        key = (route.strip("/"), tuple(sorted((k, tuple(v)) for k, v in query.items())))
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            found = self._attempt(key[0], handler, query)
            # Only answers, and a bounded number: any client can send endless distinct queries.
            if found is not None and len(self._cache) < MAX_CACHED:
                self._cache[key] = found
            return found

    def _attempt(
        self, route: str, handler: Callable[[dict[str, list[str]]], Answer], query: dict[str, list[str]]
    ) -> Answer | None:
        if self._closed:
            return None
        try:
            return handler(query)
        except Exception as err:  # a file the checks let through may still hold anything: not answerable
            log.debug("early answer declined, cellxgene will answer %s %s: %s", route, query, err)
            return None

    def cell_names_unique(self) -> bool | None:
        """Whether the cell names cellxgene requires unique (obs's index) are; None when not known
        here (a chosen names column, which cellxgene checks, or an unreadable index). The quick
        check leaves this to cellxgene's load; the front reads the names anyway, and must not
        show cells of a dataset cellxgene then refuses."""
        with self._lock:
            try:
                obs = self._obs()
                if obs.index_name is None:
                    return None
                column = self._parts[CELL_NAMES] = obs.column(obs.index_name)
                names = column.values.tolist()
            except Exception:
                return None
        return len(set(names)) == len(names)

    def release_parts(self) -> None:
        """Forget what the answers were made from (the columns as read, typed); the answers stay.
        Called once the first page's answers are made: cellxgene is about to load its own copy."""
        with self._lock:
            self._parts.clear()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._parts.clear()
            self._cache.clear()
            if self._file is not None:
                self._file.close()
                self._file = None

    # ---- the file's parts, read once ----

    def _part(self, name: str, read: Callable[[], object]) -> object:
        if name not in self._parts:
            self._parts[name] = read()
        return self._parts[name]

    def _h5(self) -> h5py.File:
        if self._file is None:
            self._file = h5py.File(self.prepared, "r")
        return self._file

    def _obs(self) -> Frame:
        return self._part("obs", lambda: Frame(self._h5()["obs"], self.options.obs_names or None))

    def _var(self) -> Frame:
        return self._part("var", lambda: Frame(self._h5()["var"], var_names_for_cellxgene(self.options)))

    def _layouts(self) -> dict[str, np.ndarray]:
        """The embeddings cellxgene offers, by name, each its two first dimensions."""

        def read() -> dict[str, np.ndarray]:
            n_obs = self._obs().length
            chosen = embedding_names(self.options.embeddings) or [
                key[2:] for key in obsm_names(self._h5()) if key.startswith("X_")
            ]
            found = {}
            for name in chosen:
                values = embedding(self._h5(), name, n_obs)
                if values is not None:
                    found[name] = values[:, 0:2]
            if not found:
                raise Unanswerable("no valid layout: cellxgene refuses the dataset")
            return dict(list(found.items())[:MAX_LAYOUTS])

        return self._part("layouts", read)

    def _labels(self) -> Labels:
        """The resumed labels cellxgene joins to obs (none when annotations are off)."""

        def read() -> Labels:
            labels = read_labels(self.paths.previous_annotations if self.options.annotations else None)
            if set(labels.names) & set(self._obs().names):
                raise Unanswerable("a label named as an obs column: cellxgene's join fails")
            return labels

        return self._part("labels", read)

    # ---- routes ----

    def _schema(self) -> dict:
        obs, var = self._obs(), self._var()
        labels = self._labels()
        return {
            "dataframe": {"nObs": obs.length, "nVar": var.length, "type": x_type(matrix_dtype(self._h5()))},
            "annotations": {
                "obs": {
                    "index": obs.names_column,
                    "columns": [self._column_schema(obs, n) for n in obs.names] + labels.schema(),
                },
                "var": {"index": var.names_column, "columns": [self._column_schema(var, n) for n in var.names]},
            },
            "layout": {"obs": [{"name": n, "type": "float32", "dims": [f"{n}_0", f"{n}_1"]} for n in self._layouts()]},
        }

    def _config(self) -> dict:
        if "version" in self._h5().get("uns", {}):
            raise Unanswerable("uns/version: a CELLxGENE Discover (corpora) file, whose props cellxgene reads")
        obs, var = self._obs(), self._var()
        return client_config(
            self.options,
            self.prepared,
            self.paths.labels_copy,
            obs_names=obs.names_column,
            var_names=var.names_column,
            n_obs=obs.length,
            n_vars=var.length,
            store_serves_genes=self.store_serves_genes,
        )

    def _column_schema(self, frame: Frame, name: str) -> dict:
        # A string column's type is known from its dtype: its values are read when it is asked for.
        hint = {"type": "string"} if frame.holds_strings(name) else self._typed(frame, name)[0]
        return {"name": name, "writable": False, **hint}

    def _typed(self, frame: Frame, name: str) -> tuple[dict, Typed]:
        """A column's type and wire array, kept: the schema and the column's own request share them."""

        def read() -> tuple[dict, Typed]:
            # The cell names, once: read already if the uniqueness check ran (cell_names_unique).
            index = frame.group.name == "/obs" and name == frame.index_name
            return column_type((self._parts.pop(CELL_NAMES, None) if index else None) or frame.column(name))

        return self._part(f"{frame.group.name}/{name}", read)

    def _annotations(self, frame: Frame, query: dict[str, list[str]]) -> bytes:
        labels = self._labels() if frame.group.name == "/obs" else None
        columns = []
        for name in _fields(query, "annotation-name"):
            if labels is not None and name in labels.values:
                columns.append((name, Typed.of_json(labels.values[name])))
            else:
                columns.append((name, self._typed(frame, name)[1]))
        return encode_matrix(frame.length, columns)

    def _layout(self, query: dict[str, list[str]]) -> bytes:
        layouts = self._layouts()
        fields = query.get("layout-name") or list(layouts)
        if len(fields) > COLUMN_REQUEST_MAX or len(set(fields)) != len(fields) or not set(fields) <= set(layouts):
            raise Unanswerable("a layout request cellxgene refuses or answers otherwise")
        columns = []
        for name in fields:
            layout = self._part(f"layout/{name}", lambda name=name: normalized_layout(layouts[name]))
            columns += [(f"{name}_0", Typed(FLOAT32, layout[:, 0])), (f"{name}_1", Typed(FLOAT32, layout[:, 1]))]
        return encode_matrix(self._obs().length, columns)

    def _colors(self) -> dict:
        if not self.options.custom_colors:
            return {}
        obs = self._obs()
        colors = {}
        for name, values in color_lists(self._h5()).items():
            if name not in obs.names:
                continue
            column = obs.column(name)
            if not column.is_categorical or column.categories.dtype.kind != "O":
                raise Unanswerable(f"colors for {name}, not a categorical of strings")
            colors[name] = dict(zip(column.categories.tolist(), [hex_color(v) for v in values], strict=False))
        return colors

    def _gene_sets(self) -> dict:
        previous = self.paths.previous_gene_sets
        if previous is None or Path(previous).stat().st_size == 0:
            return {"genesets": [], "tid": 0}
        parsed = parse_gene_sets(Path(previous).read_bytes().decode("utf-8"))  # the runtime's own reader
        genes = self._gene_names()
        return {"genesets": [checked_gene_set(gene_set, genes) for gene_set in parsed.values()], "tid": 0}

    def _gene_names(self) -> set[str]:
        """The names gene sets are checked against: the var column cellxgene names genes by."""
        var = self._var()
        if var.index_name is None:
            raise Unanswerable("genes named by a chosen column")
        column = var.column(var.index_name)
        return set(column.values.tolist())


def checked_gene_set(gene_set: dict, genes: set[str]) -> dict:
    """cellxgene's check of a resumed gene set: the name must be plain, genes it does not know and
    repeated genes are dropped (validate_gene_sets)."""
    if ILLEGAL_GENE_SET_NAME.search(gene_set["geneset_name"]):
        raise Unanswerable("a gene set name cellxgene refuses")
    seen: set[str] = set()
    kept = []
    for gene in gene_set["genes"]:
        symbol = gene["gene_symbol"]
        if symbol in seen or symbol not in genes:
            continue
        seen.add(symbol)
        kept.append(gene)
    return {**gene_set, "genes": kept}


def _fields(query: dict[str, list[str]], key: str) -> list[str]:
    fields = query.get(key) or []
    # None asked (every column) or more than cellxgene's limit: left to cellxgene.
    if not fields or len(fields) > COLUMN_REQUEST_MAX or len(set(fields)) != len(fields):
        raise Unanswerable(f"{key}: {len(fields)} names")
    return fields
