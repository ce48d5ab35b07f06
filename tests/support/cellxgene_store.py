"""cellxgene 1.3.0's own annotations store, to compare our files with the ones cellxgene writes and reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from server.common.annotations.local_file_csv import AnnotationsLocalFile


class FakeAdaptor:
    """The four things cellxgene's file store asks of a dataset."""

    def get_last_mod_time(self) -> None:
        return None

    def get_location(self) -> str:
        return "/data/pbmc.h5ad"

    def check_new_gene_sets(self, gene_sets, context=None):
        return gene_sets

    def get_obs_index(self) -> pd.Index:
        raise NotImplementedError


def cellxgene_store(folder: Path) -> AnnotationsLocalFile:
    return AnnotationsLocalFile(
        {"user-annotations": True, "genesets-save": True},
        None,
        str(folder / "cellxgene-labels.csv"),
        str(folder / "cellxgene-gene-sets.csv"),
    )


def body(text: str) -> str:
    """A cellxgene CSV without its two `#` lines (they hold a time stamp)."""
    lines = text.splitlines(keepends=True)
    assert lines[0].startswith("# ") and lines[1].startswith("# "), lines[:2]
    return "".join(lines[2:])


def head(text: str) -> str:
    return "".join(text.splitlines(keepends=True)[:2])
