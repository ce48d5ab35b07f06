"""Files that are either the old or the new version, and renames that survive a crash."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in `folder` durable: after a power loss, the name points at the new file."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # Some filesystems (certain network mounts) refuse fsync on a directory; the rename stands.
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, text: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes 0600; Galaxy may read the dataset as another user.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def replaced_on_success(output: Path, scratch_dir: str | Path | None, prefix: str) -> Iterator[Path]:
    """A hidden temporary file (in `scratch_dir`, else beside `output`) to write; renamed over
    `output` when the block ends without an error, removed otherwise: `output` is absent or complete."""
    fd, name = tempfile.mkstemp(dir=scratch_dir or output.parent, prefix=prefix, suffix=".tmp")
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the dataset from a Galaxy running as another user
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, output)
        fsync_dir(output.parent)
    finally:
        tmp.unlink(missing_ok=True)
