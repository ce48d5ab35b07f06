"""What a check finds: problems (each with its fix), and a summary of what cellxgene will show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

Severity = Literal["error", "warning"]
# Everything str.splitlines() breaks on, shown escaped instead.
LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


@dataclass(frozen=True)
class Problem:
    severity: Severity
    what: str
    fix: str

    def __str__(self) -> str:
        # One line per problem (the CLI contract): a name with a line break in it must not start
        # a new line that reads like another message in the job log.
        return f"{self.severity.upper()}: {self.what} Fix: {self.fix}".translate(LINE_BREAKS)


@dataclass
class Embedding:
    name: str
    shape: tuple[int, ...]
    shown: bool
    reason: str = ""
    # Set when cellxgene shows the entry under another name (obsm.py: tissue coordinates as `spatial`).
    shown_as: str = ""
    note: str = ""

    @property
    def viewer_name(self) -> str:
        """The name cellxgene lists it under (obsm `X_umap` is `umap`)."""
        return self.shown_as or (self.name[2:] if self.name.startswith("X_") else self.name)


@dataclass
class Summary:
    """What cellxgene will show, for the report."""

    n_obs: int = 0
    n_vars: int = 0
    x_encoding: str = ""
    x_dtype: str = ""
    obs_columns: dict[str, str] = field(default_factory=dict)
    var_columns: list[str] = field(default_factory=list)
    embeddings: list[Embedding] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    user_categories: list[str] = field(default_factory=list)
    # Columns cellxgene 1.3.0 cannot load as written: how the prepared file shows them, or why not at all.
    presented: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    gene_sets: list[str] = field(default_factory=list)
    # Gene names when the user chose none (gene_names.py): a symbol column when the index is IDs.
    default_var_names: str | None = None
    var_names_note: str = ""
    var_names_defaulted: bool = False  # the form left the choice empty and the symbols are used
    # uns["default_embedding"] (CELLxGENE Discover): the embedding shown first, when it is usable.
    default_embedding: str = ""


@dataclass
class Inspection:
    summary: Summary
    problems: list[Problem]
    obs_names: pd.Index | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]
