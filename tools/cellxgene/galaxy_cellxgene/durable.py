"""Renames that survive a crash: after `os.replace`, the directory entry itself must reach disk."""

from __future__ import annotations

import contextlib
import os
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
