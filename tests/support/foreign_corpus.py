"""The foreign corpus (tests/compat/foreign_corpus.json): fetched once, pinned, deduplicated by digest,
and the readers that check a refusal's claims against the file as anndata reads it."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from pathlib import Path

from support.fixtures import ROOT

SCRIPT = ROOT / "scripts" / "fetch_foreign_corpus.py"


def _fetcher():
    spec = importlib.util.spec_from_file_location("fetch_foreign_corpus", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def manifest_files() -> list[dict]:
    import json

    return json.loads((ROOT / "tests" / "compat" / "foreign_corpus.json").read_text())["files"]


def unique_by_digest(files: list[dict]) -> list[dict]:
    """Files with the same bytes are tested once (the first name in the manifest stands for them)."""
    seen: dict[str, dict] = {}
    for entry in files:
        seen.setdefault(entry["sha256"], entry)
    return list(seen.values())


def fetch_all() -> dict[str, Path]:
    """sha256 -> the cached file (downloads on first use)."""
    return {e["sha256"]: Path(e["local"]) for e in _fetcher().fetch()}


def _no_values(adata, what: str) -> bool:
    return adata.X is None and len(adata.layers) == 0


def _no_embedding(adata, what: str) -> bool:
    import numpy as np
    import pandas as pd
    import scipy.sparse

    drawable = [
        key
        for key, value in adata.obsm.items()
        if (key.startswith("X_") or key == "spatial")
        and isinstance(value, np.ndarray)
        and value.ndim == 2
        and value.shape[1] >= 2
        and np.isfinite(value[:, :2]).all()
    ]
    if drawable:
        return False
    listed = re.search(r"\((.*)\)\.$", what)
    if listed and listed.group(1) != "obsm is empty":
        for part in listed.group(1).split("; "):
            key, reason = part.split(": ", 1)
            value = adata.obsm[key]  # every entry the message names exists
            if reason.startswith("name does not start with X_"):
                assert not key.startswith("X_")
            if "dataframe" in reason:
                assert isinstance(value, pd.DataFrame), key
            if "csr_matrix" in reason:
                assert scipy.sparse.issparse(value), key
    else:
        assert len(adata.obsm) == 0
    return True


def _only_layers(adata, what: str) -> bool:
    names = re.search(r"only layers \((.*)\)", what)
    return adata.X is None and names is not None and names.group(1).split(", ") == sorted(adata.layers)


def _no_cells(adata, what: str) -> bool:
    return adata.n_obs == 0


# An error's opening words -> (blocker name, what must be true of the file for the claim to hold).
CLAIMS: dict[str, tuple[str, Callable]] = {
    "The dataset has no expression values": ("no_values", _no_values),
    "No embedding cellxgene can draw": ("no_embedding", _no_embedding),
    "The dataset has no X matrix, only layers": ("only_layers", _only_layers),
    "The dataset has no cells": ("no_cells", _no_cells),
}


def verified_blockers(errors: list[str], path: Path) -> list[str]:
    """The blockers the errors name, each claim checked against the file as anndata reads it."""
    import anndata

    adata = anndata.read_h5ad(path)
    found = []
    for line in errors:
        what = line.removeprefix("ERROR: ").split(" Fix: ")[0]
        match = [(name, check) for start, (name, check) in CLAIMS.items() if what.startswith(start)]
        assert match, f"an error no test knows how to check against the file: {line}"
        name, check = match[0]
        assert check(adata, what), f"the file contradicts: {line}"
        found.append(name)
    return found
