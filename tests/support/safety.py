"""Saves that identify themselves, so a file on disk can be matched to exactly one save.

Every cell of every category in save `tag` holds a value derived from `tag`, and the number
of categories depends on the tag too: a torn file, a mix of two saves or a stale save all
fail `which_save`, and a complete file names the one save it holds.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from galaxy_cellxgene.labels import LabelsError, read_labels
from galaxy_cellxgene_testkit.ui_client import UiClient

# cellxgene sets sys.tracebacklimit = 0, so an uncaught exception prints no "Traceback" line,
# only "SomeError: ..." and the chain's separators: look for all of them.
UNCAUGHT = re.compile(
    r"Traceback \(most recent call last\)|The above exception was the direct cause|"
    r"During handling of the above exception|^(?!ERROR:|WARNING:)[A-Za-z_][\w.]*(Error|Exception|Interrupt)(: |$)",
    re.M,
)


def uncaught(stderr: str) -> list[str]:
    """Signs of a crash (as opposed to a message written for the user) in a process's stderr."""
    return [m.group(0) for m in UNCAUGHT.finditer(stderr)]


def save_content(tag: str, n_cells: int, width: int = 3) -> dict[str, list[str]]:
    """Deterministic labels for save `tag`; 1..width categories so sizes differ between saves."""
    n_categories = 1 + sum(map(ord, tag)) % width
    return {f"cat_{k}": [f"{tag}-{(i + k) % 5}" for i in range(n_cells)] for k in range(n_categories)}


def read_output(path: Path) -> dict[str, list[str]]:
    """The categories in a labels output, as plain lists (raises LabelsError if unreadable)."""
    frame = read_labels(path)
    return {str(c): [str(v) for v in frame[c]] for c in frame.columns}


def which_save(path: Path, n_cells: int, width: int = 3) -> str:
    """The tag of the one complete save the file holds; AssertionError if none matches."""
    try:
        content = read_output(path)
    except LabelsError as err:
        raise AssertionError(f"{path} is not a readable labels file: {err}") from err
    assert content, f"{path} holds no categories"
    first = next(iter(content.values()))
    assert len(first) == n_cells, f"{path} has {len(first)} rows, expected {n_cells}"
    tag = first[0].rsplit("-", 1)[0]
    expected = save_content(tag, n_cells, width)
    assert content == expected, f"{path} is not exactly save {tag!r}: a torn or mixed file"
    return tag


@dataclass
class Hammer:
    """One client saving back to back; remembers what was acknowledged and what is in flight."""

    client: UiClient
    n_cells: int
    prefix: str
    width: int = 3
    acked: list[str] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    in_flight: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    limit: int | None = None

    def run(self) -> None:
        i = 0
        while not self.stop.is_set() and (self.limit is None or i < self.limit):
            tag = f"{self.prefix}{i}"
            self.sent.append(tag)
            self.in_flight.set()
            try:
                response = self.client.put_labels(save_content(tag, self.n_cells, self.width))
            except Exception as err:  # the server was killed under us: expected in fault tests
                self.failures.append(f"{tag}: {type(err).__name__}")
                return
            finally:
                self.in_flight.clear()
            if response.status_code != 200:
                self.failures.append(f"{tag}: HTTP {response.status_code} {response.text[:200]}")
                return
            self.acked.append(tag)
            self.ack_times.append(time.monotonic())
            i += 1

    @contextlib.contextmanager
    def running(self) -> Iterator[threading.Thread]:
        thread = threading.Thread(target=self.run, name=f"hammer-{self.prefix}", daemon=True)
        thread.start()
        try:
            yield thread
        finally:
            self.stop.set()
            thread.join(timeout=60)


def wait_for(condition, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@functools.cache
def can_mount() -> bool:
    """tmpfs and bind mounts need root with CAP_SYS_ADMIN (CI runs as root); try one to be sure."""
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as target:
        probe = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", target], capture_output=True)
        if probe.returncode != 0:
            return False
        subprocess.run(["umount", target], capture_output=True)
        return True


@contextlib.contextmanager
def mounted(args: list[str], target: Path) -> Iterator[Path]:
    subprocess.run(["mount", *args, str(target)], check=True, capture_output=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


def fill_disk(path: Path) -> None:
    """Write until the filesystem says ENOSPC (plain os.write: no buffered flush at close)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    chunk = b"\0" * 4096
    try:
        while True:
            os.write(fd, chunk)
    except OSError as err:
        assert err.errno == 28, f"expected ENOSPC, got {err}"
    finally:
        os.close(fd)
