"""The list tool's "New dataset from cells ... Save at Finish": one `subsets` collection for the
whole session.

Each dataset's viewer has its own subset routes (subset_routes.py, as in the single viewer). What
the list tool adds:

- the requests waiting for Finish belong to the dataset, not to one load of it: unloading a
  dataset (idle, memory budget) and reopening it keeps them (`adopt`), and a dataset that is not
  loaded when the session finishes still writes them, from its input and its saved labels
  (`finish_unloaded`), exactly as its merged h5ad is written then;
- every dataset writes into the one subsets folder, its files named `<slug>+<labels>.h5ad`
  (layout.SUBSET_SEPARATOR: no clash between datasets, no path outside the folder);
- galaxy.json names each element after the dataset and the labels ("day 7: T cells"), so the
  collection says which dataset each subset came from (`elements`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from galaxy_cellxgene.session_files import Paths

if TYPE_CHECKING:
    from galaxy_cellxgene.app import Session
    from galaxy_cellxgene.multi.datasets import Dataset


def adopt(entry: Dataset, session: Session) -> None:
    """A freshly loaded session of `entry` keeps the dataset's waiting requests, and adds to them."""
    subsets = getattr(session, "subsets", None)
    if subsets is not None:
        subsets.at_finish = entry.subsets_at_finish


def finish_unloaded(entry: Dataset, paths: Paths) -> str | None:
    """Write the subsets an unloaded dataset has waiting, with the labels it last saved; a problem
    to report, or None."""
    if not entry.subsets_at_finish or paths.subsets_out is None:
        return None
    from galaxy_cellxgene.labels import read_labels
    from galaxy_cellxgene.subset_routes import Subsets

    saved = paths.annotations_out
    subsets = Subsets(
        entry.source,
        entry.name,
        paths.work_dir,
        labels=lambda: read_labels(saved) if saved.is_file() else None,
        obs=lambda: None,  # only asking needs the viewer's cells, and nobody asks any more
        finish_dir=paths.subsets_out,
        finish_prefix=paths.subsets_prefix,
        at_finish=entry.subsets_at_finish,
    )
    return subsets.finish()


def elements(datasets: list[Dataset]) -> list[dict[str, str]]:
    """galaxy.json's elements for the subsets written: "<dataset>: <labels>", each name once."""
    listed: list[dict[str, str]] = []
    used: set[str] = set()
    for entry in datasets:
        for request in entry.subsets_at_finish:
            if request.path is None or not request.path.is_file():
                continue
            name = f"{entry.name}: {', '.join(request.labels)}"
            if name in used:  # the same labels of two categories
                name = f"{name} ({request.category})"
            base, counter = name, 2
            while name in used:
                name, counter = f"{base} {counter}", counter + 1
            used.add(name)
            listed.append({"name": name, "filename": request.path.name, "ext": "h5ad"})
    return listed
