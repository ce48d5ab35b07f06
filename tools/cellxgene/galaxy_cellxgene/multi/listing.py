"""galaxy.json: Galaxy's tool-provided metadata, listing each output file under the user's name.

File names must be safe ("day_7.csv"); the listing lets each element of the output collections
keep the input's own element identifier ("day 7"). It is rewritten (atomically) whenever files
appear, so after a Stop Galaxy finds a listing of exactly the files on disk; a merged h5ad is
listed only once it is complete, and so is each subset asked for at Finish (multi/subsets.py).
"""

from __future__ import annotations

import json
import threading

from galaxy_cellxgene.durable import atomic_write
from galaxy_cellxgene.multi import subsets
from galaxy_cellxgene.multi.datasets import Dataset
from galaxy_cellxgene.session_files import OUTPUTS, OutputDirs


class GalaxyListing:
    def __init__(self, dirs: OutputDirs, datasets: list[Dataset]) -> None:
        self.dirs = dirs
        self.datasets = datasets
        self._lock = threading.Lock()

    def write(self) -> None:
        if self.dirs.galaxy_json is None:
            return
        with self._lock:
            listing = {}
            for output, (ext, _suffix) in OUTPUTS.items():
                elements = []
                for entry in self.datasets:
                    path = self.dirs.output_file(output, entry.slug)
                    if path is not None and path.is_file():
                        elements.append({"name": entry.name, "filename": path.name, "ext": ext})
                listing[output] = {"elements": elements}
            if self.dirs.subsets is not None:  # written at Finish only, each once complete
                listing["subsets"] = {"elements": subsets.elements(self.datasets)}
            atomic_write(self.dirs.galaxy_json, json.dumps(listing, ensure_ascii=False))
