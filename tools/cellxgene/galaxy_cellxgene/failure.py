"""Never a traceback: an unexpected exception becomes one line naming what was being read.

Input problems end with exit code 2 (exit_codes.EXIT_INPUT) and a message with the fix; anything
else is the runtime's own fault and ends here, with a code of its own (EX_SOFTWARE), so a
Galaxy job log and a test can tell the two apart.
"""

from __future__ import annotations

import contextlib
import sys
from types import TracebackType

from galaxy_cellxgene.exit_codes import EXIT_BUG

# The element the metadata reader (frames.py) opened last: what the file looked like when it failed.
_last_part = {"name": ""}


def reading(node) -> None:
    """Record an h5py element (called by the reader as it goes; costs a dict store)."""
    with contextlib.suppress(ValueError, RuntimeError):
        _last_part["name"] = node.name or _last_part["name"]  # None once the file is closed


def _part_from_traceback(tb: TracebackType | None) -> str:
    """The innermost h5py element a failing frame held, if still open."""
    import h5py

    found = ""
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if isinstance(value, h5py.Group | h5py.Dataset):
                with contextlib.suppress(ValueError, RuntimeError):
                    found = value.name or found  # None once the file is closed
        tb = tb.tb_next
    return found


def one_line(command: str, err: BaseException) -> str:
    # The element's path inside the h5ad (not the file name: merge reads a temporary copy).
    part = _part_from_traceback(err.__traceback__) or _last_part["name"] or "the input (before any element)"
    detail = " ".join(f"{type(err).__name__}: {err}".split())[:300]
    return (
        f"ERROR: internal error in '{command}' while reading {part} of the input ({detail}). "
        "This is a fault of the cellxgene tool, not of your choices: please report it to your Galaxy "
        "administrators with this line and the anndata version that wrote the dataset."
    )


def report(command: str, err: BaseException) -> int:
    print(one_line(command, err), file=sys.stderr)
    return EXIT_BUG
