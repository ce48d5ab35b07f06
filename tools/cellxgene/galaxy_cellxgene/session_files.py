"""Where a session's files are: the same naming for the single viewer and for each dataset of a list.

The single viewer is given its output paths by Galaxy (`--annotations-out` ...); the list tool
is given folders, and each dataset's files in them are named after its safe name (multi/names.py):
`<annotations>/<slug>.csv`, `<gene sets>/<slug>.csv`, `<merged>/<slug>.h5ad`, `<work>/<slug>/`, and
the subsets asked for at Finish `<subsets>/<slug>+<labels>.h5ad` (one folder for every dataset:
"+" is in no safe name, so two datasets' subsets never share a file name).
Either way a dataset ends up as one `Paths`, which is all app.build_session reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# cellxgene's own working copies, in the dataset's work folder (seeded from earlier work).
LABELS_COPY = "annotations.csv"
GENE_SETS_COPY = "gene-sets.csv"
PREPARED = "dataset.h5ad"
# Output name -> (Galaxy datatype, file suffix), as the list tool's collections and galaxy.json name them.
# Between a dataset's safe name and a subset's in the shared subsets folder: no safe name holds it.
SUBSET_SEPARATOR = "+"
OUTPUTS = {"annotations": ("csv", ".csv"), "gene_sets": ("csv", ".csv"), "annotated": ("h5ad", ".h5ad")}


def csv_name(slug: str) -> str:
    return f"{slug}.csv"


@dataclass
class Paths:
    source: Path  # the user's dataset, as Galaxy hands it over
    prepared: Path  # what cellxgene opens (symlink or small linked h5ad)
    work_dir: Path
    annotations_out: Path
    gene_sets_out: Path
    merged_out: Path | None = None
    previous_annotations: Path | None = None
    previous_gene_sets: Path | None = None
    subsets_out: Path | None = None  # the folder of the subsets asked for at Finish
    subsets_prefix: str = ""  # their file names' start: the list tool's datasets share one folder

    @property
    def labels_copy(self) -> Path:
        return self.work_dir / LABELS_COPY

    @property
    def gene_sets_copy(self) -> Path:
        return self.work_dir / GENE_SETS_COPY


@dataclass
class OutputDirs:
    annotations: Path
    gene_sets: Path
    merged: Path | None
    work: Path
    previous_annotations: Path | None = None
    previous_gene_sets: Path | None = None
    # Galaxy's tool-provided metadata file: lets each output element keep the user's own element
    # identifier ("day 7"), where file names must be safe ("day_7.csv").
    galaxy_json: Path | None = None
    # The subsets asked for at Finish, every dataset's in this one folder (SUBSET_SEPARATOR).
    subsets: Path | None = None

    def folder(self, output: str) -> Path | None:
        return {"annotations": self.annotations, "gene_sets": self.gene_sets, "annotated": self.merged}[output]

    def output_file(self, output: str, slug: str) -> Path | None:
        folder = self.folder(output)
        return folder / f"{slug}{OUTPUTS[output][1]}" if folder is not None else None

    def annotations_file(self, slug: str) -> Path:
        return self.annotations / csv_name(slug)

    def gene_sets_file(self, slug: str) -> Path:
        return self.gene_sets / csv_name(slug)

    def create(self) -> None:
        for folder in (self.annotations, self.gene_sets, self.merged, self.work, self.subsets):
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)

    def paths(self, slug: str, source: Path, reload: bool) -> Paths:
        """One dataset's Paths. A reload resumes from this session's own outputs (its last save);
        a first load from the earlier work given for it, if any."""
        if reload:
            labels: Path | None = self.annotations_file(slug)
            sets: Path | None = self.gene_sets_file(slug)
        else:
            labels = _existing(self.previous_annotations, slug)
            sets = _existing(self.previous_gene_sets, slug)
        work = self.work / slug
        return Paths(
            source=source,
            prepared=work / PREPARED,
            work_dir=work,
            annotations_out=self.annotations_file(slug),
            gene_sets_out=self.gene_sets_file(slug),
            merged_out=self.output_file("annotated", slug),
            previous_annotations=labels if labels and labels.exists() else None,
            previous_gene_sets=sets if sets and sets.exists() else None,
            subsets_out=self.subsets,
            subsets_prefix=f"{slug}{SUBSET_SEPARATOR}" if self.subsets is not None else "",
        )


def _existing(folder: Path | None, slug: str) -> Path | None:
    if folder is None:
        return None
    candidate = folder / csv_name(slug)
    return candidate if candidate.is_file() else None
