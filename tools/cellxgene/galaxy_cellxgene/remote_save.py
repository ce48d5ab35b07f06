"""Saves that reach the history while the job runs, when the outputs are a remote node's copies.

On the local runner (with or without a container) each save atomically replaces Galaxy's own
output file, so a Stop loses nothing (outputs.py). On a Pulsar node the output paths are the
node's staging copies: Galaxy sees them only when the job ends and Pulsar stages them back.
Measured with pulsar-app 0.16.0 (docs/scaling.md): a Stop SIGKILLs the job's process tree at
once (no SIGTERM, no grace period), and in message-queue mode Pulsar skips the staging of a
cancelled job, so the saves of a whole session can be lost. Nothing can run after SIGKILL, so
the last completed save is pushed into the history *while the job runs*:

- after each save, once the user has paused for `debounce` seconds, and at least every
  `interval` seconds while saves keep coming (the UI autosaves every 2.5 s while editing);
- as one dataset per kind, named "cellxgene on <dataset>: cell annotations (saved at HH:MM)";
  a newer push replaces (deletes) the older one, and a file that did not change since the last
  push (or since the start) is never sent again;
- on SIGTERM (a runner that gives a grace period: Docker's stop, Kubernetes, Pulsar without
  psutil) when something is still unpushed and the budget allows;
- on a clean finish (Finish button, idle timeout) nothing is pushed and the pushed copies are
  deleted (recoverable from the history's deleted items): the job ends normally, so staging
  delivers the outputs themselves and a copy would only duplicate them.

The signal: `GALAXY_CELLXGENE_OUTPUTS=staged` in the job's environment, set by the admin on
the destination (`docker_env_GALAXY_CELLXGENE_OUTPUTS: staged` for Pulsar, scripts/galaxy/
local.py). The job cannot tell by itself: Pulsar rewrites every path (inputs, outputs, tool
files) to its staging directory and sets no variable of its own in the job's environment (read
in pulsar/managers), and a path shape like `.../outputs/dataset_*.dat` is also what Galaxy's own
`outputs_to_working_directory` gives on the local runner. The admin who configures a staging
destination knows, just as they declare GALAXY_CELLXGENE_HOST for the local one. Without the
flag (local and container destinations) nothing is ever uploaded; without Galaxy's URL and
history nothing can be.

Credentials: no API key is in the job. Pushes authenticate with the owner's Galaxy session as
last seen on a request the owner gate (owner_gate.py) proved to be the owner's: a save is such
a request, so the session is there before anything is due (galaxy_client.GalaxyLink). The
saver belongs to its session (app.Session.saver): serve.py ends it through the session.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from galaxy_cellxgene import collected
from galaxy_cellxgene.collected import Content, content_digest
from galaxy_cellxgene.galaxy_client import GalaxyCallError, GalaxyLink

log = logging.getLogger("galaxy_cellxgene.remote_save")

ENV_OUTPUTS = "GALAXY_CELLXGENE_OUTPUTS"
STAGED = "staged"
ENV_DEBOUNCE = "GALAXY_CELLXGENE_REMOTE_SAVE_DEBOUNCE"
ENV_INTERVAL = "GALAXY_CELLXGENE_REMOTE_SAVE_INTERVAL"
DEBOUNCE_SECONDS = 15.0
INTERVAL_SECONDS = 300.0
RETRY_SECONDS = 60.0
# Docker's `stop` waits 10 s before SIGKILL; keep well inside it.
TERMINATE_BUDGET_SECONDS = 5.0
# How often the saver looks whether the job's staging directory still exists (see `orphaned`).
ORPHAN_CHECK_SECONDS = 10.0
# Once orphaned: how long to look for the staged outputs in the history (Galaxy marks them ok
# around the time Pulsar deletes the job's directory), and how often.
ENV_COLLECT_WAIT = "GALAXY_CELLXGENE_REMOTE_SAVE_COLLECT_WAIT"
COLLECT_WAIT_SECONDS = 60.0
COLLECT_POLL_SECONDS = 3.0
KINDS = (("annotations", "cell annotations"), ("gene_sets", "gene sets"))


def outputs_are_staged(env: Mapping[str, str] | None = None) -> bool:
    """True when the destination declares that the outputs are a remote node's staged copies."""
    env = os.environ if env is None else env
    return env.get(ENV_OUTPUTS, "").strip().lower() == STAGED


def observe(path: Path) -> Content | None:
    """Size and digest (`collected.content_digest`, without the `#` header lines, which carry the
    save's time) of an output; None for a missing or empty file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    value = content_digest(data)
    return Content(len(data), value) if value else None


def seconds_from_env(env: Mapping[str, str], name: str, default: float) -> float:
    """An admin's tuning (GALAXY_CELLXGENE_REMOTE_SAVE_DEBOUNCE / _INTERVAL, in seconds)."""
    try:
        value = float(env.get(name, "") or default)
    except ValueError:
        return default
    return value if value >= 0 else default


class _Budget(requests.Session):
    """A session whose every request ends by `deadline` (time.monotonic()): on SIGTERM the runner
    SIGKILLs after its grace period, and a push cut short by that is no push at all."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0.05:
            raise requests.Timeout("the grace period is over")
        kwargs["timeout"] = min(float(kwargs.get("timeout") or remaining), remaining)
        return super().request(method, url, *args, **kwargs)


@dataclass
class Pushed:
    dataset_id: str
    digest: str
    name: str


@dataclass
class RemoteSaver:
    """Pushes the outputs' last completed save into the history (see the module docstring)."""

    link: GalaxyLink
    files: Sequence[tuple[Path, str]]  # (output path, kind) as in KINDS
    source_name: str
    lock: Any  # held by every save (GalaxyAnnotations.save_lock): a push never reads a torn pair
    debounce: float = DEBOUNCE_SECONDS
    interval: float = INTERVAL_SECONDS
    retry: float = RETRY_SECONDS
    clock: Callable[[], float] = time.monotonic
    on_orphan: Callable[[], None] | None = None
    collect_wait: float = COLLECT_WAIT_SECONDS
    pushed: dict[str, Pushed] = field(default_factory=dict)
    baseline: dict[str, str | None] = field(default_factory=dict)
    pushes: int = 0
    last_error: str | None = None
    _last_save: float | None = None
    _first_unpushed: float | None = None
    # What each output held at the saver's last look after a save (see `collected`).
    final: dict[str, Content] = field(default_factory=dict)
    _observed_save: float | None = None
    _not_before: float = 0.0
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _push_lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        # What the outputs hold at start (earlier work, or nothing): already in the history.
        self.baseline = {kind: content.digest for path, kind in self.files if (content := observe(path))}

    def saved(self) -> None:
        """A save completed (called inside the save, so it must not block)."""
        now = self.clock()
        self._last_save = now
        if self._first_unpushed is None:
            self._first_unpushed = now
        self._wake.set()

    def due(self) -> bool:
        if self._first_unpushed is None or self._last_save is None:
            return False
        now = self.clock()
        if now < self._not_before:
            return False
        return now - self._last_save >= self.debounce or now - self._first_unpushed >= self.interval

    def next_wait(self) -> float:
        if self._first_unpushed is None or self._last_save is None:
            return 3600.0
        now = self.clock()
        until = min(self._last_save + self.debounce, self._first_unpushed + self.interval)
        return max(0.05, max(until, self._not_before) - now)

    def changed(self) -> list[tuple[str, bytes, str]]:
        """(kind, content, digest) of the outputs whose data differs from what the history has:
        each file read once, so what is uploaded is exactly what was hashed."""
        out = []
        for path, kind in self.files:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            current = content_digest(data)
            known = self.pushed[kind].digest if kind in self.pushed else self.baseline.get(kind)
            if current is not None and current != known:
                out.append((kind, data, current))
        return out

    def push(self, reason: str, session: requests.Session | None = None, wait: float = -1) -> list[Pushed]:
        """Upload what changed (one dataset per kind), then delete the copies it replaces.

        `wait`: seconds to wait for a push or a save in progress (-1: as long as it takes)."""
        if not self._push_lock.acquire(timeout=wait):
            return []
        try:
            return self._push(reason, session, wait)
        finally:
            self._push_lock.release()

    def _push(self, reason: str, session: requests.Session | None, wait: float) -> list[Pushed]:
        if not self.lock.acquire(timeout=wait):
            return []
        try:  # a consistent snapshot: no save is half done
            snapshot = self.changed()
        finally:
            self.lock.release()
        self._first_unpushed = None
        if not snapshot:
            return []
        stamp = datetime.now().strftime("%H:%M")
        # A snapshot, not the outputs themselves: the upload must send the bytes hashed above.
        with tempfile.TemporaryDirectory(prefix="cellxgene-remote-save-") as scratch:
            files = []
            for kind, data, _ in snapshot:
                label = dict(KINDS)[kind]
                copy = Path(scratch) / f"{kind}.csv"
                copy.write_bytes(data)
                files.append((copy, label, f"cellxgene on {self.source_name}: {label} (saved at {stamp})", "csv"))
            try:
                result = self.link.client(session=session).upload_files(
                    [(path, name, ext) for path, _, name, ext in files]
                )
            except GalaxyCallError as err:
                self.last_error = str(err)
                self._first_unpushed = self._first_unpushed or self.clock()
                self._not_before = self.clock() + self.retry
                log.warning("remote save (%s) failed, retrying later: %s", reason, err)
                return []
        self.last_error = None
        new: list[Pushed] = []
        for (kind, _, value), dataset in zip(snapshot, result["datasets"], strict=False):
            old = self.pushed.get(kind)
            self.pushed[kind] = Pushed(str(dataset["id"]), value, str(dataset["name"]))
            new.append(self.pushed[kind])
            if old is not None:
                self._delete(old, session)
        self.pushes += 1
        print(
            f"[galaxy-cellxgene] remote save ({reason}): "
            + ", ".join(p.name for p in new)
            + f" sent to history {self.link.history_id}",
            flush=True,
        )
        return new

    def withdraw(self, session: requests.Session | None = None) -> None:
        """A clean finish: staging delivers the outputs, so the pushed copies would duplicate them."""
        with self._push_lock:
            for kind in list(self.pushed):
                self._delete(self.pushed.pop(kind), session)

    def _delete(self, pushed: Pushed, session: requests.Session | None) -> None:
        try:
            self.link.client(session=session).delete_dataset(pushed.dataset_id)
        except GalaxyCallError as err:
            log.warning("could not delete the older remote save %s: %s", pushed.name, err)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="remote-save", daemon=True)
        self._thread.start()

    def orphaned(self) -> bool:
        """The outputs' folder is gone: the runner ended the job and cleaned its staging directory.

        Measured with Pulsar REST through Galaxy: Stop SIGKILLs the job shell, whose own
        `docker kill` then never runs, so the container keeps serving (until the idle timeout)
        after Galaxy has collected the outputs and Pulsar has deleted the job's directory."""
        return not any(path.parent.is_dir() for path, _ in self.files)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=min(self.next_wait(), ORPHAN_CHECK_SECONDS))
            self._wake.clear()
            if self._stop.is_set():
                return
            if self._last_save != self._observed_save:
                self._observe()
            if self.on_orphan is not None and self.orphaned():
                try:
                    self.drop_collected()
                except Exception as err:  # whatever happens here, the orphan must exit
                    log.warning("could not look for the staged outputs: %s", err)
                self.on_orphan()
                return
            if self.due():
                try:
                    self.push("after a save")
                except Exception as err:  # the viewer must outlive any failure here
                    self.last_error = f"{type(err).__name__}: {err}"
                    log.warning("remote save failed: %s", self.last_error)

    def _observe(self) -> None:
        with self.lock:  # a whole save, never half of one
            self._observed_save = self._last_save
            self.final = {kind: content for path, kind in self.files if (content := observe(path))}

    def drop_collected(self, session: requests.Session | None = None) -> list[str]:
        """The job was collected: delete each pushed copy whose content a staged output brought
        into the history (looking for up to `collect_wait` seconds). Returns the kinds dropped."""
        http = session or requests.Session()
        deadline = self.clock() + self.collect_wait
        dropped: list[str] = []
        while True:
            wanted = {kind: self.final[kind] for kind in self.pushed if kind in self.final}
            ours = {pushed.dataset_id for pushed in self.pushed.values()}
            found = collected.staged_in_history(self.link.client(session=http), wanted, ours) if wanted else set()
            for kind in sorted(found):
                pushed = self.pushed.pop(kind)
                self._delete(pushed, http)
                dropped.append(kind)
                print(
                    f"[galaxy-cellxgene] {pushed.name}: the staged output holds the last save; copy deleted", flush=True
                )
            if not self.pushed.keys() & self.final.keys() or self.clock() >= deadline:
                return dropped
            time.sleep(COLLECT_POLL_SECONDS)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def on_terminate(self, deadline: float) -> None:
        """SIGTERM: push what is unpushed if it can be done by `deadline` (time.monotonic())."""
        self.stop()
        if not self.changed():
            return
        try:
            self.push("at Stop", session=_Budget(deadline), wait=max(0.0, (deadline - time.monotonic()) / 2))
        except Exception as err:
            log.warning("remote save at Stop failed: %s", err)

    def on_finish(self) -> None:
        self.stop()
        self.withdraw()


def attach(store: Any, name: str, link: GalaxyLink, env: Mapping[str, str] | None = None) -> RemoteSaver | None:
    """A saver on the annotations store (outputs.GalaxyAnnotations: its two outputs, its save
    lock, its save listeners) when the outputs are staged; app.build_session keeps it."""
    env = os.environ if env is None else env
    if not outputs_are_staged(env):
        return None
    if not link.can_write:
        print(
            "[galaxy-cellxgene] WARNING: the outputs are staged copies (GALAXY_CELLXGENE_OUTPUTS=staged) but "
            "the job environment lacks "
            + ", ".join(link.missing())
            + ". Saves reach the history only when the job ends.",
            flush=True,
        )
        return None
    saver = RemoteSaver(
        link,
        [(Path(store.labels_output), "annotations"), (Path(store.gene_sets_output), "gene_sets")],
        name,
        store.save_lock,
        debounce=seconds_from_env(env, ENV_DEBOUNCE, DEBOUNCE_SECONDS),
        interval=seconds_from_env(env, ENV_INTERVAL, INTERVAL_SECONDS),
        on_orphan=_exit_orphaned,
        collect_wait=seconds_from_env(env, ENV_COLLECT_WAIT, COLLECT_WAIT_SECONDS),
    )
    store.add_save_listener(saver.saved)
    saver.start()
    print("[galaxy-cellxgene] outputs are staged copies: saves are also pushed into the history", flush=True)
    return saver


def _exit_orphaned() -> None:
    print(
        "[galaxy-cellxgene] the job's staging directory is gone (the job was stopped and collected): exiting",
        flush=True,
    )
    os._exit(0)


def at_exit(savers: Sequence[RemoteSaver], terminated: bool) -> None:
    """SIGTERM pushes (within one budget for all), a clean finish withdraws the copies: every
    saver a session owns (one per dataset; several in a view-many session)."""
    deadline = time.monotonic() + TERMINATE_BUDGET_SECONDS
    for saver in savers:
        if terminated:
            saver.on_terminate(deadline)
        else:
            saver.on_finish()
