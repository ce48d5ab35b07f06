"""Keep glibc's allocator from holding freed memory in one heap per thread.

glibc gives threads their own malloc arenas (up to 8 per core) and keeps what they free for
later reuse. Each waitress thread that answers a gene or an embedding then holds its own high-water
mark: in backed mode, where every gene read allocates a large transient buffer, that measured
~100 MiB retained per viewer at 10k cells (434 vs 338 MiB peak with two arenas). A hosted Galaxy
runs many viewers on one node, so two arenas it is, unless the admin set MALLOC_ARENA_MAX.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
ARENAS = 2


def limit_arenas(environ: Mapping[str, str] = os.environ, arenas: int = ARENAS) -> bool:
    """Cap glibc malloc arenas for threads started from now on; False where that does not apply."""
    if "MALLOC_ARENA_MAX" in environ:  # the admin's choice, already read by glibc at start
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_ARENA_MAX, arenas))
