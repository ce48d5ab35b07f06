"""The embeddings of a dataset, in every layout anndata has written, and tissue coordinates.

cellxgene 1.3.0 draws only obsm entries named `X_<name>`. Two kinds of files need more:

- anndata < 0.7 kept obsm as one structured array (a field per embedding, e.g. scanpy's PBMC data);
- spatial data (squidpy, Visium, Xenium, MERFISH converted to h5ad) keeps the tissue coordinates in
  `obsm["spatial"]`, in image coordinates: y grows downwards. cellxgene draws y upwards, so the
  prepared file (prepare.py) offers them as `X_spatial` with y negated: the tissue appears as in its
  image, never mirrored. The input is never rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from galaxy_cellxgene.frames import encoding_of
from galaxy_cellxgene.legacy_frame import is_structured, structured_field, structured_fields
from galaxy_cellxgene.problems import Summary

SPATIAL_KEY = "spatial"
SPATIAL_NOTE = "tissue coordinates, y flipped so the tissue appears as in its image"


@dataclass(frozen=True)
class Entry:
    """One obsm entry: its key, shape (() when not an array) and what it is when not an array."""

    key: str
    shape: tuple[int, ...]
    not_array: str = ""  # e.g. "a dataframe": cellxgene never draws it
    dtype_kind: str = "f"

    @property
    def is_array(self) -> bool:
        return not self.not_array and len(self.shape) == 2


def entries(f: h5py.File) -> list[Entry]:
    node = f.get("obsm")
    if node is None:
        return []
    if is_structured(node):
        kinds = {name: node.dtype.fields[name][0].base.kind for name in node.dtype.names}  # type: ignore[index]
        return [
            Entry(key, shape if len(shape) == 2 else (shape[0], 1), "", kinds[key])
            for key, shape in sorted(structured_fields(node).items())
        ]
    if not isinstance(node, h5py.Group):
        return []
    found = []
    for key in sorted(node.keys()):
        value = node[key]
        if not isinstance(value, h5py.Dataset) or value.ndim != 2:
            kind = encoding_of(value) or ("group" if isinstance(value, h5py.Group) else f"{value.ndim}-D array")
            article = "an" if kind[:1] in "aeiou" else "a"
            found.append(Entry(key, (), f"{article} {kind}"))
        else:
            found.append(Entry(key, tuple(value.shape), "", value.dtype.kind))
    return found


def coordinates(f: h5py.File, key: str, dims: int = 2) -> np.ndarray:
    """The first `dims` columns of an obsm entry, as stored."""
    node = f["obsm"]
    if is_structured(node):
        return structured_field(node, key)[:, :dims]
    return node[key][:, :dims]


def spatial_name(keys: list[str]) -> str:
    """cellxgene's name for the tissue coordinates: `spatial`, unless the file has its own X_spatial."""
    return SPATIAL_KEY if f"X_{SPATIAL_KEY}" not in keys else "spatial_tissue"


def tissue_view(coords: np.ndarray) -> np.ndarray:
    """Image coordinates (y down) as cellxgene draws them (y up): the same picture, not mirrored."""
    shown = np.array(coords[:, :2], dtype=np.float64 if coords.dtype.kind != "f" else coords.dtype)
    shown[:, 1] = -shown[:, 1]
    return shown


def has_spatial(f: h5py.File) -> bool:
    return any(e.key == SPATIAL_KEY and e.is_array for e in entries(f))


def read_default_embedding(f: h5py.File, summary: Summary) -> None:
    """uns['default_embedding'] (CELLxGENE Discover), when it names an embedding cellxgene shows."""
    node = f.get("uns/default_embedding") if isinstance(f.get("uns"), h5py.Group) else None
    if not isinstance(node, h5py.Dataset) or node.ndim != 0 or h5py.check_string_dtype(node.dtype) is None:
        return
    wanted = node.asstr()[()]
    match = next((e for e in summary.embeddings if e.shown and wanted in (e.name, e.viewer_name)), None)
    summary.default_embedding = match.viewer_name if match else ""
