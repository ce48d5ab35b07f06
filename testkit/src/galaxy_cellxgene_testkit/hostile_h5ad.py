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


# --- Crafted files of issue 22: reached by reference, malformed, nested, oversized, filtered. ---
# Each is the good twin above with one part changed; the test names the one sentence it expects.

_HDF5: object = None


def hdf5_library():
    """h5py's own libhdf5 (the same loaded copy, so identifiers are shared), for the two calls h5py
    does not expose: raising an object's reference count and creating a user-defined link."""
    import ctypes
    import os

    global _HDF5
    if _HDF5 is None:
        libs = Path(os.path.dirname(h5py.__file__)).parent / "h5py.libs"
        (path,) = [p for p in libs.glob("libhdf5-*")]
        lib = ctypes.CDLL(str(path))
        lib.H5Oincr_refcount.argtypes = [ctypes.c_int64]
        lib.H5Lcreate_ud.argtypes = [
            ctypes.c_int64, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64,
            ctypes.c_int64,
        ]  # fmt: skip
        _HDF5 = lib
    return _HDF5


def unlinked(f: h5py.File, make: Callable[[h5py.Group, str], h5py.Dataset]) -> h5py.Dataset:
    """A dataset that stays in the file with no link to it (reference count raised, then unlinked)."""
    dataset = make(f, "__soon_unlinked")
    assert hdf5_library().H5Oincr_refcount(dataset.id.id) >= 0
    del f["__soon_unlinked"]
    return dataset


def _legacy_obs(f: h5py.File) -> None:
    """obs in anndata 0.7's layout: codes datasets, labels in obs/__categories, by reference."""
    obs = f["obs"]
    obs.attrs["encoding-version"] = "0.1.0"
    categories = obs.create_group("__categories")
    for column in ("cell_type", "louvain"):
        labels = obs[column]["categories"].asstr()[()]
        codes = obs[column]["codes"][()]
        del obs[column]
        stored = categories.create_dataset(column, data=labels.astype(object), dtype=h5py.string_dtype())
        dataset = obs.create_dataset(column, data=codes)
        dataset.attrs["categories"] = stored.ref


def make_legacy(folder: Path, target: str | None = None) -> Path:
    """anndata 0.7 layout; `target` ("external storage", "virtual dataset", "var frame") makes
    obs/cell_type's categories reference point elsewhere: an unlinked dataset over the secrets, or
    a dataset of another frame."""
    folder.mkdir(parents=True, exist_ok=True)
    text, other = write_secrets(folder)
    path = folder / f"legacy-{(target or 'good').replace(' ', '-')}.h5ad"
    base_adata().write_h5ad(path)
    with h5py.File(path, "r+") as f:
        _legacy_obs(f)
        if target == "external storage":
            hidden = unlinked(f, lambda g, n: g.create_dataset(n, (3,), "S64", external=[(str(text), 0, 192)]))
        elif target == "virtual dataset":
            layout = h5py.VirtualLayout(shape=(3,), dtype=h5py.string_dtype())
            layout[:] = h5py.VirtualSource(str(other), "labels", shape=(N_CELLS,))[:3]
            hidden = unlinked(f, lambda g, n: g.create_virtual_dataset(n, layout))
        elif target == "var frame":
            hidden = f["var"].create_dataset("__categories_elsewhere", data=np.array([b"a", b"b", b"c"]))
        else:
            return path
        f["obs/cell_type"].attrs["categories"] = hidden.ref
    return path


SPARSE_FAULTS = ("index-out-of-range", "negative-index", "indptr-decreasing", "indptr-past-data")


def make_sparse(folder: Path, fault: str) -> Path:
    """A CSR X whose structure is broken one way (scipy does not check index bounds: a heap write)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sparse-{fault}.h5ad"
    adata = base_adata()
    from scipy import sparse

    adata.X = sparse.csr_matrix(adata.X)
    adata.write_h5ad(path)
    with h5py.File(path, "r+") as f:
        indices, indptr = f["X/indices"], f["X/indptr"]
        if fault == "index-out-of-range":
            indices[5] = 1_000_000
        elif fault == "negative-index":
            indices[5] = -5
        elif fault == "indptr-decreasing":
            indptr[10] = indptr[12] + 3
        elif fault == "indptr-past-data":
            indptr[-1] = indptr[-1] + 100
    return path


def make_deep(folder: Path, depth: int = 12_000) -> Path:
    """uns holding `depth` nested groups (about 1.6 MB at 12,000)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"deep-{depth}.h5ad"
    base_adata().write_h5ad(path)
    with h5py.File(path, "r+") as f:
        group = f["uns"].create_group("nest")
        for _ in range(depth):
            group = group.create_group("n")
    return path


def _zero_chunks(dataset: h5py.Dataset) -> None:
    """Every chunk written as deflated zeros (about 1000:1): the file stays small, every value stored."""
    import itertools
    import zlib

    chunk = dataset.chunks
    raw = zlib.compress(bytes(int(np.prod(chunk)) * dataset.dtype.itemsize), 9)
    ranges = [range(0, n, c) for n, c in zip(dataset.shape, chunk, strict=True)]
    for offset in itertools.product(*ranges):
        dataset.id.write_direct_chunk(offset, raw)


HUGE_CELLS, HUGE_GENES = 20_000, 30_000  # a dense float32 X of 2.2 GiB


def make_huge_dense(folder: Path, stored: bool) -> Path:
    """A small file declaring a 2.2 GiB dense X; `stored`: its chunks are written (deflated zeros),
    else never written (read as zeros, nothing stored)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"huge-dense-{'stored' if stored else 'unwritten'}.h5ad"
    rng = np.random.default_rng(3)
    obs = pd.DataFrame(index=[f"c{i}" for i in range(HUGE_CELLS)])
    var = pd.DataFrame(index=[f"g{i}" for i in range(HUGE_GENES)])
    adata = ad.AnnData(obs=obs, var=var)
    adata.obsm["X_umap"] = rng.normal(size=(HUGE_CELLS, 2)).astype(np.float32)
    adata.write_h5ad(path)
    with h5py.File(path, "r+") as f:
        if "X" in f:
            del f["X"]
        x = f.create_dataset("X", (HUGE_CELLS, HUGE_GENES), "<f4", chunks=(1000, 1000), compression="gzip")
        x.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        if stored:
            _zero_chunks(x)
    return path


HUGE_NNZ = 150_000_000


def make_huge_sparse(folder: Path) -> Path:
    """A CSR X of 150 M stored values (deflated zeros, well-formed) in under a megabyte."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "huge-sparse.h5ad"
    adata = base_adata()
    adata.write_h5ad(path)
    per_row = HUGE_NNZ // N_CELLS
    with h5py.File(path, "r+") as f:
        del f["X"]
        x = f.create_group("X")
        x.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": (N_CELLS, N_GENES)})
        x.create_dataset("indptr", data=np.arange(0, HUGE_NNZ + 1, per_row, dtype=np.int64))
        for name, dtype in (("data", "<f4"), ("indices", "<i4")):
            _zero_chunks(x.create_dataset(name, (HUGE_NNZ,), dtype, chunks=(1 << 20,), compression="gzip"))
    return path


def make_unavailable_filter(folder: Path, filter_id: int = 32001) -> Path:
    """An uns entry compressed with a filter HDF5 lacks (32001: Blosc), its one chunk written raw."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "filter.h5ad"
    base_adata().write_h5ad(path)
    with h5py.File(path, "r+") as f:
        d = f["uns"].create_dataset(
            "packed", (16,), "<f4", chunks=(16,), compression=filter_id, allow_unknown_filter=True
        )
        d.id.write_direct_chunk((0,), bytes(64))
    return path


USER_DEFINED_LINK_TYPE = 100


def make_user_defined_link(folder: Path) -> Path:
    """An obs column that is a user-defined link (a link class this process registers to write it)."""
    import ctypes

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ud-link.h5ad"
    base_adata().write_h5ad(path)
    lib = hdf5_library()

    class LinkClass(ctypes.Structure):
        _fields_ = [("version", ctypes.c_int), ("id", ctypes.c_int), ("comment", ctypes.c_char_p)] + [
            (f"f{i}", ctypes.c_void_p) for i in range(6)
        ]

    traverse = ctypes.CFUNCTYPE(ctypes.c_int64)(lambda *a: -1)
    link_class = LinkClass(
        1, USER_DEFINED_LINK_TYPE, b"crafted", None, None, None, ctypes.cast(traverse, ctypes.c_void_p)
    )
    assert lib.H5Lregister(ctypes.byref(link_class)) >= 0
    with h5py.File(path, "r+") as f:
        del f["obs/louvain"]
        target = str(folder / "other_user.h5").encode()
        obs = f["obs"]  # held: a temporary's identifier would be closed before the call
        assert lib.H5Lcreate_ud(obs.id.id, b"louvain", USER_DEFINED_LINK_TYPE, target, len(target), 0, 0) >= 0
    lib.H5Lunregister(USER_DEFINED_LINK_TYPE)
    return path


def make_codes_out_of_range(folder: Path, code: int) -> Path:
    """obs/cell_type's codes name category `code` (3 categories: valid codes are -1..2)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"codes-{code}.h5ad"
    base_adata().write_h5ad(path)
    with h5py.File(path, "r+") as f:
        f["obs/cell_type/codes"][3] = code
    return path


def make_huge_uns(folder: Path) -> Path:
    """An uns entry of 1 GiB of stored (deflated) zeros in about a megabyte."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "huge-uns.h5ad"
    base_adata().write_h5ad(path)
    with h5py.File(path, "r+") as f:
        big = f["uns"].create_dataset("big", (1 << 28,), "<f4", chunks=(1 << 20,), compression="gzip")
        big.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        _zero_chunks(big)
    return path


def make_wide(folder: Path, links: int = 210_000) -> Path:
    """uns holding more links than any h5ad has (soft links to one group: quick to write, and
    the walk counts every link, followed or not)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "wide.h5ad"
    base_adata().write_h5ad(path)
    with h5py.File(path, "r+") as f:
        many = f["uns"].create_group("many")
        target = f["uns"].create_group("one")
        for i in range(links):
            many[f"l{i}"] = h5py.SoftLink(target.name)
    return path
