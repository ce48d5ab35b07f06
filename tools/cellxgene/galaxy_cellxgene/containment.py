"""A dataset may only hold its own bytes: find every HDF5 object that reads from another file.

HDF5 can place a dataset's bytes outside the file in three ways, and h5py, anndata and so
cellxgene follow all three without a word: an external link (a group or dataset that lives in
another file), external raw storage (a dataset whose bytes are a range of any file, such as a
server's configuration file), and a virtual dataset (a dataset mapped over datasets of other
files). A crafted h5ad would thereby make the viewer, the check report and the merged output
carry the bytes of any file the job can open. So every input is scanned before anything else
reads it (and relative paths are kept from resolving at all: hdf5_env.py). The only file
allowed to link elsewhere is the runtime's own prepared file, whose links point into the one
input it was made from (prepare.py).

The scan walks links without following them (`visititems_links`) and opens each dataset's
creation properties only: it reads no data, and costs milliseconds for a typical h5ad.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py

WHY = (
    "a dataset must hold its own data: an h5ad whose parts point into other files could make "
    "the viewer show files of the Galaxy server"
)
FIX = (
    "write the dataset without links, e.g. in Python `adata = anndata.read_h5ad(path); "
    "adata.write_h5ad(new_path)`, which stores every part inside the new file, and upload that."
)


@dataclass(frozen=True)
class OutsideReference:
    """One object of the file whose bytes live in another file."""

    path: str  # HDF5 path inside the file, e.g. /obs/cell_type
    kind: str  # "external link", "external storage", "virtual dataset"
    target: str  # where it points, for the message

    def describe(self, role: str = "The dataset") -> str:
        return (
            f"{role}: {part_name(self.path)} is stored in another file ({self.kind} to {self.target!r}): "
            f"refused, because {WHY}."
        )


class OutsideData(ValueError):
    """Raised where a file with outside references reaches code that would read it."""

    def __init__(self, references: list[OutsideReference], role: str = "The dataset") -> None:
        self.references = references
        self.role = role
        super().__init__(" ".join(r.describe(role) for r in references[:3]) + f" Fix: {FIX}")


def part_name(hdf5_path: str) -> str:
    """The AnnData name of an HDF5 path, as a user knows it ("obs column 'cell_type'")."""
    parts = [p for p in hdf5_path.split("/") if p]
    if not parts:
        return "the root group"
    if len(parts) == 1:
        return parts[0]
    top, name = parts[0], parts[1]
    kinds = {
        "obs": "obs column",
        "var": "var column",
        "obsm": "embedding",
        "varm": "varm entry",
        "obsp": "obsp entry",
        "varp": "varp entry",
        "layers": "layer",
        "uns": "uns entry",
    }
    if top in kinds:
        rest = "/".join(parts[2:])
        return f"{kinds[top]} {name!r}" + (f" (/{'/'.join(parts)})" if rest else "")
    return "/" + "/".join(parts)


def outside_references(path: str | Path, limit: int = 20) -> list[OutsideReference]:
    """Every external link, external-storage dataset and virtual dataset in the file (up to `limit`).

    The caller has made sure the file is HDF5 (`h5py.is_hdf5`).
    """
    found: list[OutsideReference] = []
    with h5py.File(path, "r") as f:

        def visit(name: str, link: h5py.HardLink | h5py.SoftLink | h5py.ExternalLink) -> bool | None:
            where = "/" + name
            if isinstance(link, h5py.ExternalLink):
                found.append(OutsideReference(where, "external link", f"{link.filename}:{link.path}"))
            elif isinstance(link, h5py.HardLink):
                node = f.get(name, getclass=True)
                if node is h5py.Dataset:
                    found.extend(_dataset_references(f[name], where))
            return True if len(found) >= limit else None  # a true value stops the walk

        f.visititems_links(visit)
    return found[:limit]


def _dataset_references(dataset: h5py.Dataset, where: str) -> list[OutsideReference]:
    # One creation property list answers both questions; h5py's properties would fetch it twice.
    dcpl = dataset.id.get_create_plist()
    found = []
    if dcpl.get_external_count():
        files = ", ".join(
            sorted({dcpl.get_external(i)[0].decode(errors="replace") for i in range(dcpl.get_external_count())})
        )
        found.append(OutsideReference(where, "external storage", files))
    if dcpl.get_layout() == h5py.h5d.VIRTUAL:
        sources = ", ".join(sorted({dcpl.get_virtual_filename(i) for i in range(dcpl.get_virtual_count())}))
        found.append(OutsideReference(where, "virtual dataset", sources))
    return found


def require_self_contained(path: str | Path, role: str = "The dataset") -> None:
    """Raise OutsideData if the HDF5 file at `path` reads from any other file."""
    references = outside_references(path)
    if references:
        raise OutsideData(references, role)
