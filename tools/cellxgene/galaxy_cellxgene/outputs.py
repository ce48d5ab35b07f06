"""Galaxy outputs that always hold the user's last completed save.

Galaxy's Stop sends SIGTERM and collects the output files about a second later; nothing
the tool does after that counts. So each save is written, inside the request that made it,
to a temporary file beside the output and renamed over it: the output is the previous
save or the new one, never a torn file, and never older than the last answered request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from galaxy_cellxgene import cellxgene_internals as cx
from galaxy_cellxgene.cellxgene_internals import AnnotationsLocalFile
from galaxy_cellxgene.durable import atomic_write
from galaxy_cellxgene.labels import gene_sets_csv, labels_csv
from galaxy_cellxgene.limits import RequestRefused

log = logging.getLogger("galaxy_cellxgene")


class OutputNotWritable(RequestRefused):
    """A save that could not reach its Galaxy output (disk full, read-only, quota).

    cellxgene turns a ValueError into a bare 400 ("the browser sent a request that this server
    could not understand") and keeps the message out of the body. An HTTPException that carries
    its own response passes cellxgene's handlers and flask-restful unchanged, so the browser gets
    507 Insufficient Storage with the reason, and the UI's autosave shows "HTTP error 507".
    """

    def __init__(self, message: str, strerror: str, path: Path) -> None:
        self.strerror = strerror
        self.path = path
        super().__init__(507, message)


def csv_header(kind: str, source: str) -> str:
    stamp = datetime.now().isoformat(timespec="seconds")
    # The title is free text: a line break in it would end this comment line and add CSV rows.
    source = " ".join(str(source).split())
    return (
        f"# {kind} generated on {stamp} using cellxgene version {cx.version()} (Galaxy)\n"
        f"# Input data file was {source}\n"
    )


@dataclass
class SaveLog:
    """What the status route and the job log report; also the idle clock's input."""

    label_saves: int = 0
    gene_set_saves: int = 0
    last_save: float | None = None
    last_error: str | None = None
    categories: list[str] = field(default_factory=list)
    gene_sets: list[str] = field(default_factory=list)


class GalaxyAnnotations(AnnotationsLocalFile):
    """cellxgene's file-backed annotations, writing atomically into Galaxy's outputs.

    `label_output_file`/`gene_sets_output_file` are cellxgene's working copies, seeded from
    earlier work and read once at start; from then on each save renders once and lands only
    in the Galaxy output, which is also what cellxgene reads back.
    cellxgene's backup rotation is skipped: it renames the file away, which would leave the
    Galaxy output missing between two writes.
    """

    def __init__(
        self,
        config: dict,
        labels_file: Path,
        gene_sets_file: Path,
        labels_output: Path,
        gene_sets_output: Path,
        source_name: str,
    ) -> None:
        super().__init__(config, None, str(labels_file), str(gene_sets_file))
        self.labels_output = Path(labels_output)
        self.gene_sets_output = Path(gene_sets_output)
        self.source_name = source_name
        self.log = SaveLog()
        self.save_lock = threading.RLock()
        # Called inside each completed save, under the save lock: must not block (remote_save).
        self.save_listeners: list[Callable[[], None]] = []
        self.frozen = False
        # Before publish_initial cellxgene reads the working copies (seeded from earlier work);
        # after it, the Galaxy outputs are the only files, written once per save.
        self.published = False

    def _get_celllabels_filename(self, data_adaptor):
        return str(self.labels_output) if self.published else self.label_output_file

    def _get_genesets_filename(self, data_adaptor):
        return str(self.gene_sets_output) if self.published else self.gene_sets_output_file

    def _backup(self, fname, max_backups=9):
        return None

    def freeze(self) -> None:
        """Refuse every later save; one in flight completes first."""
        with self.save_lock:
            self.frozen = True

    def _check_open(self) -> None:
        if self.frozen:
            raise cx.disabled_feature("This session has finished; its annotations are in your Galaxy history.")

    def write_labels(self, df: pd.DataFrame, data_adaptor) -> None:
        self.check_user_annotations_enabled()
        with self.save_lock, self.label_lock:
            self._check_open()
            if df is None or df.empty:
                df = pd.DataFrame(index=data_adaptor.get_obs_index())
            text = labels_csv(df, csv_header("Annotations", self.source_name))
            self._write_output(self.labels_output, text)
            self.last_label_fname = str(self.labels_output)
            self.last_labels = df if len(df.columns) else pd.DataFrame()
            self.log.label_saves += 1
            self.log.categories = [str(c) for c in df.columns]
            self._saved()

    def write_gene_sets(self, gene_sets, tid, data_adaptor) -> None:
        self.check_gene_sets_save_enabled()
        if type(tid) is not int or tid < 0:
            raise ValueError("tid must be a positive integer")
        gene_sets = data_adaptor.check_new_gene_sets(gene_sets)

        with self.save_lock, self.gene_sets_lock:
            self._check_open()
            if tid <= self.last_geneset_tid:
                raise cx.obsolete_request("TID is stale.")
            self.last_geneset_tid = tid
            text = gene_sets_csv(gene_sets, csv_header("Gene sets", self.source_name))
            self._write_output(self.gene_sets_output, text)
            self.last_geneset_fname = str(self.gene_sets_output)
            self.last_geneset = gene_sets if isinstance(gene_sets, dict) else {g["geneset_name"]: g for g in gene_sets}
            self.log.gene_set_saves += 1
            self.log.gene_sets = sorted(self.last_geneset)
            self._saved()

    def _write_output(self, output: Path, text: str) -> None:
        try:
            atomic_write(output, text)
        except OSError as err:
            self.log.last_error = f"Could not save to the Galaxy output ({err.strerror}); the previous save is kept."
            # The job log is where an admin looks first; the status route is where the page looks.
            log.warning("%s Output: %s", self.log.last_error, output)
            raise OutputNotWritable(self.log.last_error, err.strerror or str(err), output) from err
        self.log.last_error = None

    def add_save_listener(self, listener: Callable[[], None]) -> None:
        self.save_listeners.append(listener)

    def _saved(self) -> None:
        self.log.last_save = time.time()
        for listener in self.save_listeners:
            listener()

    def publish_initial(self, data_adaptor) -> None:
        """Outputs hold a valid file from the first second: previous work, or no categories yet."""
        with self.save_lock:
            previous = self.read_labels(data_adaptor) if self.user_annotations_enabled() else pd.DataFrame()
            if previous.empty:
                labels = pd.DataFrame(index=data_adaptor.get_obs_index())
            else:
                labels = previous.set_axis(data_adaptor.get_obs_index(), axis=0)
            text = labels_csv(labels, csv_header("Annotations", self.source_name))
            self._write_output(self.labels_output, text)
            gene_sets, _ = self.read_gene_sets(data_adaptor)
            text = gene_sets_csv(gene_sets, csv_header("Gene sets", self.source_name))
            self._write_output(self.gene_sets_output, text)
            self.published = True
            # What the outputs now hold, as cellxgene would read it back: no second read.
            self.last_label_fname, self.last_labels = str(self.labels_output), previous
            self.last_geneset_fname, self.last_geneset = str(self.gene_sets_output), gene_sets
            self.log.categories = [str(c) for c in labels.columns]
            self.log.gene_sets = sorted(gene_sets)

    def read_gene_sets(self, data_adaptor, context=None):
        """cellxgene's method with our reader: cellxgene's skips rows whose name starts with '#'."""
        from galaxy_cellxgene.labels import read_gene_sets as read_tidy

        fname = self._get_genesets_filename(data_adaptor)
        with self.gene_sets_lock:
            tid = self.last_geneset_tid
            if fname is None or not os.path.exists(fname) or os.path.getsize(fname) == 0:
                return {}, tid
            if fname == self.last_geneset_fname:
                return self.last_geneset, tid
            gene_sets = data_adaptor.check_new_gene_sets(read_tidy(fname), context)
            self.last_geneset_fname = fname
            self.last_geneset = gene_sets
            return gene_sets, tid

    def current_labels(self, data_adaptor) -> pd.DataFrame:
        return self.read_labels(data_adaptor)

    def current_gene_sets(self, data_adaptor) -> dict:
        gene_sets, _ = self.read_gene_sets(data_adaptor)
        return gene_sets
