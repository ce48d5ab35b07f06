"""cellxgene's own Flask app, built the way `cellxgene launch` builds it, plus Galaxy's routes.

No fork: we fill cellxgene's AppConfig, let it load the dataset, swap in an annotations
store that writes Galaxy outputs, and add a blueprint (status, finish, our page script)
that the page loads through cellxgene's documented `dataset.app.scripts` setting.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from flask import Blueprint, Flask, jsonify, send_from_directory

from galaxy_cellxgene import cellxgene_internals as cx
from galaxy_cellxgene import (
    diffexp_export,
    diffexp_gate,
    galaxy_export,
    gene_clicks,
    limits,
    page_fixes,
    remote_save,
    subset_routes,
)
from galaxy_cellxgene.columns import ColumnStore, start_column_copy
from galaxy_cellxgene.diffexp_export import DiffexpLog
from galaxy_cellxgene.galaxy_client import GalaxyLink
from galaxy_cellxgene.merge import merge_into_h5ad
from galaxy_cellxgene.outputs import GalaxyAnnotations
from galaxy_cellxgene.session_files import Paths
from galaxy_cellxgene.settings import (
    ViewerOptions,
    dataset_config,
    diffexp_cell_limit,
    page_scripts,
    server_config,
)
from galaxy_cellxgene.web import FINISH_REFUSED, STATIC_DIR, finish_allowed, is_quiet, no_store

log = logging.getLogger("galaxy_cellxgene")


@dataclass
class Session:
    app: Flask
    store: GalaxyAnnotations
    paths: Paths
    options: ViewerOptions
    data_adaptor: object
    finished: threading.Event = field(default_factory=threading.Event)
    distribution_known: threading.Event = field(default_factory=threading.Event)
    columns: ColumnStore | None = None
    diffexp: DiffexpLog | None = None
    # Galaxy's URL, the owner's history and session (galaxy_client.py), shared with serve's gates.
    galaxy: GalaxyLink = field(default_factory=lambda: GalaxyLink(None, None))
    # Pushes saves into the history when the outputs are staged copies (remote_save.py).
    saver: remote_save.RemoteSaver | None = None
    subsets: subset_routes.Subsets | None = None
    finish_reason: str | None = None
    finish_error: str | None = None
    last_activity: float = field(default_factory=time.monotonic)
    in_flight: int = 0  # requests being answered: the idle clock must not end those
    _activity_lock: threading.Lock = field(default_factory=threading.Lock)
    _finish_lock: threading.Lock = field(default_factory=threading.Lock)

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def request_started(self) -> None:
        with self._activity_lock:
            self.in_flight += 1
            self.touch()

    def request_ended(self) -> None:
        with self._activity_lock:
            self.in_flight -= 1
            self.touch()

    def idle_for(self) -> float:
        """Seconds with no request running; 0 while one is."""
        with self._activity_lock:
            return 0.0 if self.in_flight else time.monotonic() - self.last_activity

    def close(self) -> dict:
        """Refuse every later save (the list tool unloads this dataset); the saves it took."""
        self.store.freeze()
        return {"label_saves": self.store.log.label_saves, "gene_set_saves": self.store.log.gene_set_saves}

    def hold_saves(self, timeout: float) -> bool:
        """Wait for a save in flight and keep later ones out; the caller is exiting (serve.py)."""
        return self.store.save_lock.acquire(timeout=timeout)

    def finish(self, reason: str) -> dict:
        """Freeze saves, write the merged h5ad and the subsets asked for at Finish, send the tables
        not sent yet, then signal the server to exit 0, also when a step failed (its error is in
        the status: the CSV outputs are safe whatever happens here). Idempotent."""
        with self._finish_lock:
            if self.finish_reason is None:
                self.finish_reason = reason
                try:
                    self._finish_steps()
                except Exception as err:  # never leave the server waiting for a finish that broke
                    self._add_finish_error(f"Finishing failed: {err}")
                    log.exception("finish failed")
                finally:
                    self.finished.set()
            return self.status()

    def _finish_steps(self) -> None:
        with self.store.save_lock:
            self.store.frozen = True
            try:
                self._write_merged()
            except Exception as err:
                self._add_finish_error(f"The merged h5ad could not be written: {err}")
                log.exception("merged h5ad failed")
            if self.subsets is not None:
                self._add_finish_error(self.subsets.finish())
        self._add_finish_error(self.send_pending_diffexp())

    def _add_finish_error(self, problem: str | None) -> None:
        self.finish_error = "; ".join(filter(None, (self.finish_error, problem))) or None

    def refuse(self, reason: str) -> None:
        """End the view without a merged h5ad: the input was refused while it was served (a
        malformed X found by the column copy's own pass). Saves stop; those made stay."""
        with self._finish_lock:
            if self.finish_reason is None:
                with self.store.save_lock:
                    self.store.frozen = True
                self.finish_reason = reason
                self.finished.set()

    def end_when_refused(self, columns: ColumnStore) -> threading.Thread:
        """Cells are served while the column copy is built (gene requests wait for it); if its pass
        refuses X, the view ends and the job exits 2 naming X (cli.py). No request ever reads X."""

        from galaxy_cellxgene.joblog import say

        def watch() -> None:
            columns.ready.wait()
            if columns.refusal:
                say(f"ending the view, the input was refused: {columns.refusal}")
                self.refuse("the input was refused")

        thread = threading.Thread(target=watch, name="x-refusal", daemon=True)
        thread.start()
        return thread

    def send_pending_diffexp(self) -> str | None:
        """Differential expression results not exported yet go to the history (if export is on)."""
        if not self.app.config.get("GALAXY_EXPORT_ENABLED"):
            return None
        name = self.options.display_name(self.paths.source)
        return galaxy_export.export_diffexp_at_finish(self.galaxy, self.diffexp, name)

    def at_exit(self, terminated: bool) -> None:
        """The process is ending (serve.py): SIGTERM pushes unpushed saves, a clean end withdraws
        the pushed copies (remote_save.at_exit). Nothing to do without a remote saver."""
        remote_save.at_exit([self.saver] if self.saver else [], terminated)

    def _write_merged(self) -> None:
        if self.paths.merged_out is None:
            return
        labels = self.store.current_labels(self.data_adaptor)
        gene_sets = self.store.current_gene_sets(self.data_adaptor)
        self.paths.merged_out.parent.mkdir(parents=True, exist_ok=True)
        merge_into_h5ad(
            self.paths.source,
            self.paths.merged_out,
            labels,
            gene_sets,
            # Beside the target, so the final rename never crosses filesystems; the hidden
            # temporary name matches no discover_datasets pattern.
            scratch_dir=self.paths.merged_out.parent,
        )

    def status(self) -> dict:
        log_ = self.store.log
        return {
            "title": self.options.title,
            "column_copy": self.columns.state() if self.columns is not None else "off",
            "column_copy_progress": self.columns.progress if self.columns is not None else None,
            "x_store": self.columns.describe() if self.columns is not None else {"kind": "cellxgene"},
            "label_saves": log_.label_saves,
            "gene_set_saves": log_.gene_set_saves,
            "categories": log_.categories,
            "gene_sets": log_.gene_sets,
            "last_save": log_.last_save,
            "last_error": log_.last_error,
            "finished": self.finished.is_set(),
            "finish_reason": self.finish_reason,
            "finish_error": self.finish_error,
            "annotations_enabled": self.store.user_annotations_enabled(),
            "export_enabled": bool(self.app.config.get("GALAXY_EXPORT_ENABLED")),
            "diffexp_results": [c.title() for c in self.diffexp.comparisons] if self.diffexp else [],
        }


def build_session(
    paths: Paths, options: ViewerOptions, columns: ColumnStore | None = None, galaxy: GalaxyLink | None = None
) -> Session:
    """cellxgene's app for one dataset; `columns` is a column copy already started for it;
    `galaxy` the process's one link to Galaxy (a new one from the environment if None)."""
    galaxy = galaxy if galaxy is not None else GalaxyLink.from_env()
    scripts = page_scripts(galaxy.can_write)
    options_for_config = ViewerOptions(**{**options.__dict__, "extra_scripts": options.extra_scripts + scripts})

    labels_copy, gene_sets_copy = paths.labels_copy, paths.gene_sets_copy
    _seed(paths.previous_annotations, labels_copy)
    _seed(paths.previous_gene_sets, gene_sets_copy)

    if columns is None:
        columns = start_column_copy(paths.prepared, options)
    backed = columns is not None or None  # X stays on disk for cellxgene: the copy serves it
    app_config = cx.load_app_config(
        server_config(options, str(paths.prepared), secrets.token_hex(32), load_backed=backed),
        # "normal" is a placeholder when auto: set after loading, without cellxgene's numba compile (distribution.py).
        dataset_config(options_for_config, str(labels_copy), str(gene_sets_copy), "normal"),
        lambda message: log.info("[cellxgene] %s", message),
    )
    data_adaptor = cx.data_adaptor(app_config)
    n_obs, n_vars = cx.shape(data_adaptor)
    cx.set_diffexp_cell_limit(app_config, diffexp_cell_limit(options, n_vars))
    if columns is not None:
        columns.attach(data_adaptor)
    _cache_layouts(data_adaptor)
    if columns is not None and n_obs * n_vars <= 5e8:
        # cellxgene warns "diffexp may be slow" for backed data; ours is in memory shortly.
        cx.quiet_slow_diffexp_warning(data_adaptor)
    distribution_known = _settle_distribution(data_adaptor, paths.prepared, options, columns)
    store = GalaxyAnnotations(
        cx.annotations_config(app_config),
        labels_copy,
        gene_sets_copy,
        paths.annotations_out,
        paths.gene_sets_out,
        source_name=options.display_name(paths.source),
    )
    cx.use_annotations(app_config, store)
    store.publish_initial(data_adaptor)

    app = cx.launch_app(app_config)
    limits.install(app, n_obs)
    page_fixes.install(app, options.first_embedding)
    session = Session(
        app, store, paths, options, data_adaptor, distribution_known=distribution_known, columns=columns, galaxy=galaxy
    )
    session.diffexp = DiffexpLog(paths.work_dir)
    _add_galaxy_routes(app, session)
    gene_clicks.install(session)  # one gene's click from the column store, beside Flask (gene_clicks.py)
    session.subsets = subset_routes.attach(
        app, paths, options.display_name(paths.source), store, data_adaptor, galaxy if galaxy.can_write else None
    )
    diffexp_export.record(app, session.diffexp, data_adaptor, labels=lambda: store.current_labels(data_adaptor))
    if galaxy.can_write:
        name = options.display_name(paths.source)
        galaxy_export.register(app, galaxy, paths.annotations_out, paths.gene_sets_out, name, diffexp=session.diffexp)
        app.config["GALAXY_EXPORT_ENABLED"] = True
    # Outputs staged on a remote node (Pulsar): also push saves into the history.
    session.saver = remote_save.attach(store, options.display_name(paths.source), galaxy)
    return session


def _cache_layouts(data_adaptor) -> None:
    """Encode each embedding once: cellxgene re-normalises and re-encodes it on every request
    (~9 ms of CPU at 100k cells, most of it nanmin/nanmax), though it never changes in a session.

    The UI asks for one embedding at a time, but any client can name any combination: the cache
    keeps the most recent few (one per embedding), so its memory stays what the UI's use needs.
    Unknown names raise in cellxgene's encoder and are never cached.
    """
    from collections import OrderedDict

    capacity = max(2, len(cx.embedding_names(data_adaptor)))
    cache: OrderedDict[tuple, bytes] = OrderedDict()
    lock = threading.Lock()

    def layout_to_fbs_matrix(fields):
        key = tuple(fields or ())
        with lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
            cache[key] = bytes(encode(fields))
            while len(cache) > capacity:
                cache.popitem(last=False)
            return cache[key]

    encode = cx.replace_method(data_adaptor, "layout_to_fbs_matrix", layout_to_fbs_matrix)
    data_adaptor.layout_cache = cache  # for the tests: what the cache holds


def _settle_distribution(
    data_adaptor, prepared: Path, options: ViewerOptions, columns: ColumnStore | None
) -> threading.Event:
    """Replace the distribution placeholder with cellxgene's rule.

    With X in memory the rule takes milliseconds, so it runs now. With X on disk (the column
    copy being built, or the user's backed mode) it runs beside the viewer, on the copy once
    built or streaming the file, and differential expression waits for it.
    """
    from galaxy_cellxgene import distribution

    done = threading.Event()
    auto = options.x_distribution == "auto"
    on_disk = columns is not None or cx.x_on_disk(data_adaptor)
    if not on_disk:
        if auto:
            cx.set_distribution(data_adaptor, distribution.of_matrix(cx.x_in_memory(data_adaptor)))
        done.set()
        return done

    def work() -> None:
        try:
            if columns is not None:
                columns.ready.wait()
                if columns.refusal:
                    return  # X was refused: the view ends, and nothing reads it again
            if auto:
                in_memory = columns is not None and columns.matrix is not None
                value = (
                    distribution.from_chunks(columns.matrix.values())
                    if in_memory
                    else distribution.of_file(str(prepared))
                )
                cx.set_distribution(data_adaptor, value)
        finally:
            done.set()

    threading.Thread(target=work, name="background-load", daemon=True).start()
    return done


def _seed(previous: Path | None, working_copy: Path) -> None:
    working_copy.unlink(missing_ok=True)
    if previous is not None:
        working_copy.write_bytes(Path(previous).read_bytes())


def _add_galaxy_routes(app: Flask, session: Session) -> None:
    bp = Blueprint("galaxy", __name__, url_prefix="/galaxy")

    @bp.get("/status")
    def status():
        return no_store(jsonify(session.status()))

    @bp.post("/finish")
    def finish():
        from flask import request

        if not finish_allowed(request.headers):
            return no_store(jsonify({"message": FINISH_REFUSED})), 403
        return no_store(jsonify(session.finish("finish button")))

    @bp.get("/static/<path:filename>")
    def static(filename: str):
        return send_from_directory(STATIC_DIR, filename, max_age=0)

    app.register_blueprint(bp)
    diffexp_gate.install(app, session.options, session.distribution_known)

    @app.before_request
    def track_activity():
        from flask import request

        if not is_quiet(request.path):
            request.environ["galaxy_cellxgene.counted"] = True
            session.request_started()

    @app.teardown_request
    def track_activity_end(exc=None):
        from flask import request

        if request.environ.pop("galaxy_cellxgene.counted", False):
            session.request_ended()

    @app.after_request
    def bytes_fix(response):
        # cellxgene returns bytearray bodies; WSGI servers other than waitress send them empty.
        body = response.response
        if isinstance(body, list) and any(isinstance(chunk, bytearray) for chunk in body):
            response.set_data(b"".join(bytes(chunk) for chunk in body))
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
