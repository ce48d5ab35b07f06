"""A new h5ad holding only the chosen cells: the viewer's "New dataset from cells", its Finish, and
the merge tool's subsets (one dataset per label, for workflows).

What the output holds is what anndata's own `adata[mask].copy()` holds, with the user's labels
merged into obs first (merge.add_labels_to_obs): the small parts (obs, var, obsm, obsp, varm,
varp, uns, raw/var) are subset by anndata itself, so unused categories and their `<column>_colors`
go exactly as anndata drops them; X, every layer and raw/X are streamed block by block
(subset_matrix.py), so the memory needed does not grow with the matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from galaxy_cellxgene.merge import add_labels_to_obs
from galaxy_cellxgene.subset_matrix import BLOCK_BYTES, copy_rows

SMALL_PARTS = ("obsm", "obsp", "varm", "varp", "uns")
# Categories with more labels than this are not offered (cellxgene's own --max-category-items).
MAX_LABELS = 1000
# One h5ad each: more than this many datasets from one run is a mistake, not a workflow.
MAX_SUBSETS = 100


class SubsetError(ValueError):
    """A subset that cannot be made as asked; the message names the problem, `fix` the way out."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


def subset_title(dataset_name: str, chosen: Sequence[str], n_cells: int) -> str:
    """ "cellxgene on pbmc.h5ad: T cells (2,301 cells)"."""
    return f"cellxgene on {dataset_name}: {', '.join(map(str, chosen))} ({n_cells:,} cells)"


def label_choices(obs: pd.DataFrame, limit: int = MAX_LABELS) -> dict[str, list[str]]:
    """Every category a subset can be made from (categorical, text or boolean obs columns that are
    not one name per cell), with its labels."""
    choices: dict[str, list[str]] = {}
    for column in obs.columns:
        values = obs[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            names = sorted({str(v) for v in values.cat.categories})
        elif values.dtype.kind in "fciu":
            continue  # measurements and counts, not labels
        else:
            names = sorted({str(v) for v in values.unique()})
            if len(names) == len(values) > 1:
                continue  # one name per cell (an identifier), not a label
        if 0 < len(names) <= limit:
            choices[str(column)] = names
    return choices


def cell_mask(obs: pd.DataFrame, category: str, chosen: Sequence[str]) -> np.ndarray:
    """One bool per cell: its label in `category` is one of `chosen`."""
    columns = {str(c): c for c in obs.columns}
    if category not in columns:
        raise SubsetError(
            f"there is no category '{category}' in this dataset's cells or in the annotations.",
            f"Choose one of: {', '.join(list(columns)[:20])}.",
        )
    values = obs[columns[category]]
    if not isinstance(values.dtype, pd.CategoricalDtype) and values.dtype.kind in "fciu":
        raise SubsetError(
            f"the category '{category}' holds numbers, not labels.",
            "Choose a categorical column (a clustering, a cell type) or one of your annotation categories.",
        )
    text = values.astype(str)
    missing = sorted(set(map(str, chosen)) - set(text.unique()))
    if not chosen or missing:
        known = sorted(text.unique())[:20]
        raise SubsetError(
            f"the category '{category}' has no cells labelled {', '.join(map(repr, missing)) or '(none chosen)'}.",
            f"Choose labels that cells carry: {', '.join(known)}.",
        )
    return text.isin(list(map(str, chosen))).to_numpy()


@dataclass
class SubsetSource:
    """The input's small parts read once (several subsets of one input share them)."""

    path: Path
    obs: pd.DataFrame
    var: pd.DataFrame
    small: dict
    raw_small: dict | None

    @classmethod
    def read(cls, path: str | Path, labels: pd.DataFrame | None = None, overwrite: bool = False) -> SubsetSource:
        from galaxy_cellxgene.containment import require_self_contained

        # The same entry check as the merge: no part of the input may be read from another file.
        require_self_contained(path)
        with h5py.File(path, "r") as f:
            obs, var = _frame(f, "obs"), _frame(f, "var")
            small = {key: _read(f[key]) for key in SMALL_PARTS if key in f}
            raw_small = None
            if isinstance(f.get("raw"), h5py.Group) and "X" in f["raw"]:
                raw = f["raw"]
                raw_small = {key: _read(raw[key]) for key in ("var", "varm") if key in raw}
        if labels is not None and len(labels.columns):
            obs = add_labels_to_obs(obs, labels, overwrite=overwrite)
        return cls(Path(path), obs, var, small, raw_small)

    def choices(self) -> dict[str, list[str]]:
        return label_choices(self.obs)

    def mask(self, category: str, chosen: Sequence[str]) -> np.ndarray:
        return cell_mask(self.obs, category, chosen)

    def write(
        self,
        mask: np.ndarray,
        output: str | Path,
        scratch_dir: str | Path | None = None,
        block_bytes: int = BLOCK_BYTES,
    ) -> int:
        """Write the cells of `mask` to `output` (atomically: absent or complete); the cell count."""
        from galaxy_cellxgene.containment import require_self_contained
        from galaxy_cellxgene.durable import replaced_on_success

        mask = np.asarray(mask, dtype=bool)
        if len(mask) != len(self.obs):
            raise SubsetError(f"the selection covers {len(mask)} cells, the dataset {len(self.obs)}.", "Reload.")
        if not mask.any():
            raise SubsetError("no cells are selected.", "Choose labels that some cells carry.")
        with replaced_on_success(Path(output), scratch_dir, ".subset-") as tmp:
            with h5py.File(self.path, "r") as source, h5py.File(tmp, "w") as target:
                self._write(source, target, mask, block_bytes)
            require_self_contained(tmp, "The subset")
        return int(mask.sum())

    def _write(self, source: h5py.File, target: h5py.File, mask: np.ndarray, block_bytes: int) -> None:
        import anndata as ad
        from anndata.io import write_elem

        # anndata subsets the small parts itself: categories and uns colours as its own [mask] leaves them.
        whole = ad.AnnData(obs=self.obs, var=self.var, **{k: v for k, v in self.small.items()})
        part = whole[mask].copy()
        target.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        # Strings stored as the input stores them: pandas' string arrays (anndata 0.13's files) stay so.
        with ad.settings.override(allow_write_nullable_strings=True):
            write_elem(target, "obs", part.obs)
            write_elem(target, "var", part.var)
            for key in SMALL_PARTS:
                write_elem(target, key, dict(getattr(part, key)))
        if "X" in source:
            copy_rows(source["X"], target, "X", mask, block_bytes)
        layers = target.create_group("layers")
        layers.attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
        for name, node in source["layers"].items() if isinstance(source.get("layers"), h5py.Group) else ():
            copy_rows(node, layers, name, mask, block_bytes)
        if self.raw_small is not None:
            raw = target.create_group("raw")
            raw.attrs.update({"encoding-type": "raw", "encoding-version": "0.1.0"})
            copy_rows(source["raw"]["X"], raw, "X", mask, block_bytes)
            with ad.settings.override(allow_write_nullable_strings=True):
                for key, value in self.raw_small.items():
                    write_elem(raw, key, value)


def _read(node: h5py.Group | h5py.Dataset):
    from anndata.io import read_elem

    return read_elem(node)


def _frame(f: h5py.File, key: str) -> pd.DataFrame:
    from galaxy_cellxgene.frames import encoding_of

    node = f.get(key)
    if not isinstance(node, h5py.Group) or encoding_of(node) != "dataframe":
        raise SubsetError(
            f"the dataset's {key} is written by an anndata older than 0.7, which this tool cannot subset.",
            "Read it with anndata and save it again (adata.write_h5ad), then try again.",
        )
    return _read(node)


def write_label_subsets(
    source: SubsetSource, category: str, chosen: Sequence[str], out_dir: str | Path, block_bytes: int = BLOCK_BYTES
) -> list[tuple[str, Path, int]]:
    """One h5ad per label of `category` (every label when `chosen` is empty), named after the label
    (a safe file name: Galaxy makes it the collection element's name); (label, path, cells) each."""
    from galaxy_cellxgene.multi.names import unique_safe_names

    labels = list(dict.fromkeys(map(str, chosen))) or source.choices().get(category)
    if not labels:
        source.mask(category, ["?"])  # names the problem: no such category, or numbers
    if not labels or len(labels) > MAX_SUBSETS:
        raise SubsetError(
            f"the category '{category}' has more than {MAX_SUBSETS} labels: one dataset each is too many.",
            f"Name the labels to write (at most {MAX_SUBSETS}).",
        )
    for label in labels:  # every label is checked before the first file is written
        source.mask(category, [label])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for label, stem in zip(labels, unique_safe_names(labels), strict=True):
        path = out_dir / f"{stem}.h5ad"
        written.append((label, path, source.write(source.mask(category, [label]), path, block_bytes=block_bytes)))
    return written


def run_subsets(args) -> None:
    """The merge command's subsets (cli.run_merge): labels read as the merge reads them."""
    from galaxy_cellxgene.labels import read_labels

    chosen = list(args.subset_label)
    if args.subset_labels_file is not None:
        lines = Path(args.subset_labels_file).read_text(encoding="utf-8", errors="replace").splitlines()
        chosen += [line.strip() for line in lines if line.strip()]
    labels = read_labels(args.annotations) if args.annotations is not None else None
    source = SubsetSource.read(args.input, labels, overwrite=args.replace_columns)
    for label, path, cells in write_label_subsets(source, args.subset_by, chosen, args.subsets_dir):
        print(f"subset {args.subset_by} = {label}: {cells:,} cells into {path.name}")
