"""A column store built once per dataset: a folder the admin lets jobs share.

Without it every session of every user who opens a CSR atlas rebuilds the same column-major copy
of X (column_file.py) before the first gene can be drawn: ~19 s at 1M cells on a quiet machine,
five times that on a loaded one. With `GALAXY_CELLXGENE_STORE_CACHE` set, the first session
builds the copy into that folder and the next ones open it.

What makes an entry trustworthy, and why:

- **Keyed by Galaxy's dataset UUID**, which Galaxy fills in the tool's command
  (`$input.dataset.uuid`) and no user chooses: a job can only hit the entry of a dataset its own
  user may read. Without a UUID (the runtime run by hand) nothing is cached: a key made from the
  file's bytes alone would be either slow (hashing all of X costs as much as the build) or, if
  sampled, forgeable by someone who knows part of another user's data (docs/security.md).
- **Checked against its source on every open**: the entry records a fingerprint of X (encoding,
  dtype, shape, the whole row pointer, and sampled runs of the values and column indices). A
  source that changed under the same UUID (a restored or edited file) misses and is rebuilt.
- **Checked for structure**: shape and dtype must match; column_file.ColumnFile reads only what
  its column pointer says, and that pointer is verified here (monotone, ending at the stored size)
  before the store answers anything.
- **Built once under a lock**: two jobs opening the same dataset at once take an exclusive lock
  per key (`fcntl.flock`); the second waits and then opens what the first wrote. Entries appear by
  an atomic rename, never half-written.
- **Size-capped, least recently used out first**: opening an entry touches it; after a build the
  oldest entries are removed until the folder is under `GALAXY_CELLXGENE_STORE_CACHE_MB`. A
  session that still reads a removed entry keeps its open file (POSIX unlink semantics).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from galaxy_cellxgene.joblog import say

CACHE_ENV = "GALAXY_CELLXGENE_STORE_CACHE"
CAP_ENV = "GALAXY_CELLXGENE_STORE_CACHE_MB"
DEFAULT_CAP_MB = 100 * 1024
ENTRY_SUFFIX = ".columns.h5"
SAMPLES = 16  # runs of values and column indices hashed into the fingerprint
SAMPLE_ITEMS = 1 << 14
UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
LOCK_WAIT_S = 3600.0  # a build of the largest atlas on a loaded node stays well under this


class CacheMiss(Exception):
    """The entry is absent or does not match its source: build it."""


@dataclass(frozen=True)
class StoreCache:
    root: Path
    cap_bytes: int

    @classmethod
    def from_environment(cls, environ: dict | None = None) -> StoreCache | None:
        env = os.environ if environ is None else environ
        folder = env.get(CACHE_ENV, "").strip()
        if not folder:
            return None
        try:
            cap_mb = float(env.get(CAP_ENV, "") or DEFAULT_CAP_MB)
        except ValueError:
            cap_mb = DEFAULT_CAP_MB
        return cls(Path(folder), int(max(cap_mb, 0) * 2**20))

    def entry(self, key: str) -> Path:
        return self.root / f"{key}{ENTRY_SUFFIX}"

    def obtain(self, key: str, fingerprint: str, build: Callable[[Path], tuple[float, float] | None]) -> Path:
        """The entry for `key`, built by `build(path)` (which writes the store at path and returns
        the value range) when absent or stale. Only one job builds a key at a time."""
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.entry(key)
        with self._locked(key):
            try:
                verify_entry(target, fingerprint)
                os.utime(target)  # least recently used goes first
                say(f"X store: reused the cached column store {target.name}")
                return target
            except CacheMiss as miss:
                if target.exists():
                    say(f"X store: the cached column store does not match its source ({miss}); rebuilding it")
            scratch = target.with_name(f".{target.name}.{os.getpid()}.building")
            try:
                value_range = build(scratch)
                with h5py.File(scratch, "r+") as f:
                    f.attrs["galaxy_cellxgene_fingerprint"] = fingerprint
                    if value_range is not None:
                        f.attrs["galaxy_cellxgene_value_range"] = np.asarray(value_range, dtype=np.float64)
                os.chmod(scratch, 0o600)
                os.replace(scratch, target)
            finally:
                scratch.unlink(missing_ok=True)
        self.evict(keep=target)
        return target

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove the least recently used entries until the folder is under its cap."""
        entries = sorted(_entries(self.root), key=lambda p: p[1].st_mtime)
        total = sum(st.st_size for _, st in entries)
        removed = []
        for path, st in entries:
            if total <= self.cap_bytes:
                break
            if path == keep:
                continue
            path.unlink(missing_ok=True)
            total -= st.st_size
            removed.append(path)
        if removed:
            say(f"X store cache: removed {len(removed)} least recently used entries to stay under the cap")
        return removed

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        fd = os.open(self.root / f".{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"another job has been building {key} for over {LOCK_WAIT_S:.0f} s"
                        ) from None
                    time.sleep(0.2)  # polling a lock held by another process: no event to wait on
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _entries(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    for path in root.glob(f"*{ENTRY_SUFFIX}"):
        try:
            yield path, path.stat()
        except FileNotFoundError:  # removed by another job meanwhile
            continue


def cache_key(dataset_uuid: str | None) -> str | None:
    """The cache key for a Galaxy dataset UUID; None (no caching) for anything else."""
    if not dataset_uuid or not UUID.match(dataset_uuid.strip()):
        return None
    return dataset_uuid.strip().replace("-", "").lower()


def fingerprint(path: str | Path, matrix: str = "X") -> str:
    """What the cached store must match: X's encoding, dtype, shape, row pointer and sampled
    values and column indices. Reads ~(n_obs * 8 + 2 MiB): milliseconds at 1M cells."""
    digest = hashlib.sha256()
    with h5py.File(path, "r") as f:
        node = f[matrix]
        shape = np.asarray(node.attrs.get("shape", ()), dtype=np.int64)
        digest.update(f"{node.attrs.get('encoding-type', '')}|{shape.tolist()}|".encode())
        digest.update(np.ascontiguousarray(node["indptr"][()], dtype=np.int64).tobytes())
        for name in ("data", "indices"):
            dataset = node[name]
            digest.update(f"|{name}|{dataset.dtype.str}|{dataset.shape[0]}|".encode())
            for start in _sample_starts(dataset.shape[0]):
                digest.update(np.ascontiguousarray(dataset[start : start + SAMPLE_ITEMS]).tobytes())
    return digest.hexdigest()


def _sample_starts(n: int) -> list[int]:
    if n <= SAMPLE_ITEMS * SAMPLES:
        return list(range(0, n, SAMPLE_ITEMS))
    return [int(s) for s in np.linspace(0, n - SAMPLE_ITEMS, SAMPLES)]


def verify_entry(path: Path, expected: str) -> None:
    """Raise CacheMiss unless `path` is a complete store made from the source with `expected`."""
    if not path.is_file():
        raise CacheMiss("absent")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("galaxy_cellxgene_fingerprint") != expected:
                raise CacheMiss("its source's fingerprint differs")
            if f.attrs.get("encoding-type") != "csc_matrix":
                raise CacheMiss("not a column-major matrix")
            n_cols = int(f.attrs["shape"][1])
            indptr = f["indptr"][()]
            stored = f["data"].shape[0]
            if f["indices"].shape[0] != stored or indptr.shape != (n_cols + 1,):
                raise CacheMiss("its arrays disagree in length")
            if indptr[0] != 0 or indptr[-1] != stored or np.any(np.diff(indptr) < 0):
                raise CacheMiss("its column pointer is not a valid CSC pointer")
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise CacheMiss(f"unreadable ({type(err).__name__})") from err


def value_range_of(path: Path) -> tuple[float, float] | None:
    with h5py.File(path, "r") as f:
        stored = f.attrs.get("galaxy_cellxgene_value_range")
    return None if stored is None else (float(stored[0]), float(stored[1]))
