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

The scan (hdf5_walk.py) walks every link without following external ones, and every object
reference an attribute holds; it opens each dataset's creation properties only, reads no data,
and costs milliseconds for a typical h5ad. It also refuses what would make a reader loop, load
plugin code or fill memory (user-defined links, deep nesting, missing filters, declared sizes
the file does not store): one scan, run by every command before any other reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py

from galaxy_cellxgene.hdf5_walk import Finding, walk

WHY = (
    "a dataset must hold its own data: an h5ad whose parts point into other files could make "
    "the viewer show files of the Galaxy server"
)
FIX = (
    "write the dataset without links, e.g. in Python `adata = anndata.read_h5ad(path); "
    "adata.write_h5ad(new_path)`, which stores every part inside the new file, and upload that."
)


OUTSIDE_KINDS = ("external link", "external storage", "virtual dataset")
# The other findings of the walk (hdf5_walk.py): what the part does, why that is refused, the fix.
RESAVE = (
    "re-save the dataset with anndata (`anndata.read_h5ad(path).write_h5ad(new_path)`), which writes a plain "
    "h5ad, and upload that."
)
SENTENCES = {
    "user-defined link": (
        "is a user-defined HDF5 link (link type {target}), which HDF5 resolves through code outside the file",
        RESAVE,
    ),
    "second link": (
        "is a second hard link to {target} (a cycle, or the same data read again and again)",
        RESAVE,
    ),
    "reference attribute": (
        "carries an object reference in its attribute '{target}' (not the anndata 0.7 categories pattern): "
        "a reference can reach objects no link names",
        RESAVE,
    ),
    "legacy categories": (
        "its categories point to an object outside the {target} frame",
        RESAVE,
    ),
    "reference dataset": (
        "holds object references, which can reach objects no link names",
        RESAVE,
    ),
    "nesting": (
        "nests groups more than {target} levels deep",
        "store the data with fewer levels of groups (an h5ad nests a few levels); " + RESAVE,
    ),
    "too many links": (
        "holds more than {target} HDF5 links and attributes, far more than an h5ad has",
        "remove the unneeded entries (often in uns) and re-save the dataset.",
    ),
    "filter": (
        "is compressed with the HDF5 filter {target}, which this HDF5 does not include "
        "(plugin libraries are not loaded)",
        "re-save the dataset with gzip or no compression, e.g. `adata.write_h5ad(new_path, compression='gzip')`.",
    ),
    "declared size": (
        "declares {target}: the rest would read as zeros, so a small file would fill the job's memory or disk",
        "re-create the dataset with anndata so that every value it declares is stored.",
    ),
}


@dataclass(frozen=True)
class OutsideReference:
    """One object of the file that is refused: its bytes live in another file (OUTSIDE_KINDS), or
    another finding of the walk (SENTENCES)."""

    path: str  # HDF5 path inside the file, e.g. /obs/cell_type
    kind: str  # an OUTSIDE_KINDS entry or a SENTENCES key
    target: str  # where it points, or the finding's detail, for the message

    def describe(self, role: str = "The dataset") -> str:
        if self.kind in OUTSIDE_KINDS:
            return (
                f"{role}: {part_name(self.path)} is stored in another file ({self.kind} to {self.target!r}): "
                f"refused, because {WHY}."
            )
        sentence, _fix = SENTENCES[self.kind]
        part = part_name(self.path)
        if self.kind == "legacy categories":
            return f"{role}: {part}: {sentence.format(target=self.target)}; refused."
        return f"{role}: {part} {sentence.format(target=self.target)}; refused."

    @property
    def fix(self) -> str:
        return FIX if self.kind in OUTSIDE_KINDS else SENTENCES[self.kind][1]


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
        if len(parts) > 6:  # deep nesting: the full path would fill the line
            return f"{kinds[top]} {name!r} (/{'/'.join(parts[:4])}/.../{parts[-1]}, {len(parts)} levels)"
        rest = "/".join(parts[2:])
        return f"{kinds[top]} {name!r}" + (f" (/{'/'.join(parts)})" if rest else "")
    return "/" + "/".join(parts)


def outside_references(path: str | Path, limit: int = 20) -> list[OutsideReference]:
    """Every refused object of the file (up to `limit`): parts stored in other files, and the
    other findings of the walk over everything a reader can reach (hdf5_walk.py).

    The caller has made sure the file is HDF5 (`h5py.is_hdf5`).
    """
    with h5py.File(path, "r") as f:
        findings = walk(f.id, limit)
    return [OutsideReference(x.path, *_kind(x)) for x in findings]


def _kind(finding: Finding) -> tuple[str, str]:
    if finding.kind == "declared size":
        declared, stored = (int(n) for n in finding.detail.split("/"))
        return finding.kind, f"{_size(declared)} of values but stores {_size(stored)} of them in the file"
    if finding.kind == "reference attribute" and finding.detail == "categories":
        frame = finding.path.strip("/").split("/")[0] or "root"
        return "legacy categories", frame
    return finding.kind, finding.detail


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def require_self_contained(path: str | Path, role: str = "The dataset") -> None:
    """Raise OutsideData if the HDF5 file at `path` reads from any other file."""
    references = outside_references(path)
    if references:
        raise OutsideData(references, role)
