"""h5ad files crafted to read outside themselves, one per way HDF5 allows it.

Each is a viewable dataset (it opens in cellxgene unchanged when nothing refuses it) in which
one part is replaced by a reference to a "secret" file beside it: the bytes an attacker would
want are those of the Galaxy server's configuration or of other users' datasets. The secret
values are recognisable (CANARY text, 4242.0 floats) so a test can tell whether they leaked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd

N_CELLS, N_GENES = 200, 30  # under 200 cells cellxgene's real UI breaks
CANARY = "CANARY-SECRET-db-password"
CANARY_VALUE = np.float32(4242.0)


@dataclass(frozen=True)
class Crafted:
    kind: str  # what the runtime must say: "external link", "external storage", "virtual dataset"
    part: str  # how the message names the part
    build: Callable[[h5py.File, Path], None]  # replaces one part of a good file


def base_adata() -> ad.AnnData:
    rng = np.random.default_rng(7)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(rng.choice(["T", "B", "NK"], N_CELLS)),
            "louvain": pd.Categorical(rng.choice(["0", "1"], N_CELLS)),
        },
        index=[f"cell{i}" for i in range(N_CELLS)],
    )
    var = pd.DataFrame(index=[f"gene{i}" for i in range(N_GENES)])
    adata = ad.AnnData(rng.poisson(1.0, (N_CELLS, N_GENES)).astype(np.float32), obs=obs, var=var)
    adata.obsm["X_umap"] = rng.normal(size=(N_CELLS, 2)).astype(np.float32)
    adata.uns["louvain_colors"] = np.array(["#1f77b4", "#ff7f0e"], dtype=object)
    return adata


def write_secrets(folder: Path) -> tuple[Path, Path]:
    """A text file standing for galaxy.yml and an HDF5 file standing for another user's dataset."""
    text = folder / "galaxy.yml"
    line = f"database_connection: postgresql://galaxy:{CANARY}@db/galaxy\n".encode()
    text.write_bytes(line * (N_CELLS * N_GENES * 4 // len(line) + 1))
    other = folder / "other_user.h5"
    with h5py.File(other, "w") as f:
        values = f.create_dataset("values", data=np.full((N_CELLS, N_GENES), CANARY_VALUE, dtype=np.float32))
        values.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        labels = f.create_dataset("labels", data=np.array([CANARY] * N_CELLS, dtype=object), dtype=h5py.string_dtype())
        labels.attrs.update({"encoding-type": "string-array", "encoding-version": "0.2.0"})
        colors = f.create_dataset("colors", data=np.array([CANARY, CANARY], dtype=object), dtype=h5py.string_dtype())
        colors.attrs.update({"encoding-type": "string-array", "encoding-version": "0.2.0"})
    return text, other


def _obs_column_link(f: h5py.File, secrets: Path) -> None:
    del f["obs/cell_type"]
    f["obs/cell_type"] = h5py.ExternalLink(str(secrets / "other_user.h5"), "/labels")


def _x_link(f: h5py.File, secrets: Path) -> None:
    del f["X"]
    f["X"] = h5py.ExternalLink(str(secrets / "other_user.h5"), "/values")


def _x_external_storage(f: h5py.File, secrets: Path) -> None:
    del f["X"]
    size = N_CELLS * N_GENES * 4
    x = f.create_dataset("X", (N_CELLS, N_GENES), "<f4", external=[(str(secrets / "galaxy.yml"), 0, size)])
    x.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})


def _x_virtual(f: h5py.File, secrets: Path) -> None:
    del f["X"]
    layout = h5py.VirtualLayout(shape=(N_CELLS, N_GENES), dtype="f4")
    layout[:] = h5py.VirtualSource(str(secrets / "other_user.h5"), "values", shape=(N_CELLS, N_GENES))
    x = f.create_virtual_dataset("X", layout)
    x.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})


def _uns_colors_link(f: h5py.File, secrets: Path) -> None:
    del f["uns/louvain_colors"]
    f["uns/louvain_colors"] = h5py.ExternalLink(str(secrets / "other_user.h5"), "/colors")


CRAFTED = {
    "obs-column-link": Crafted("external link", "obs column 'cell_type'", _obs_column_link),
    "x-link": Crafted("external link", "X", _x_link),
    "x-external-storage": Crafted("external storage", "X", _x_external_storage),
    "x-virtual": Crafted("virtual dataset", "X", _x_virtual),
    "uns-colors-link": Crafted("external link", "uns entry 'louvain_colors'", _uns_colors_link),
}


def make(folder: Path, name: str) -> Path:
    """Write the crafted file `name` (a key of CRAFTED) and its secrets into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    write_secrets(folder)
    path = folder / f"{name}.h5ad"
    base_adata().write_h5ad(path)
    if name != "good":
        with h5py.File(path, "r+") as f:
            CRAFTED[name].build(f, folder)
    return path


def make_linked_csv_stand_in(folder: Path) -> Path:
    """An 'earlier annotations' input that is HDF5 with an external link, not a CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    write_secrets(folder)
    path = folder / "earlier_annotations.csv"
    with h5py.File(path, "w") as f:
        f["cell_type"] = h5py.ExternalLink(str(folder / "other_user.h5"), "/labels")
    return path
