"""allocator.py caps glibc's malloc arenas for the viewer, unless the admin already chose."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from galaxy_cellxgene.allocator import ARENAS, limit_arenas

TOOL_DIR = Path(__file__).resolve().parents[2] / "tools" / "cellxgene"

# Eight threads allocate at once (100 kB: malloc, not Python's small-object allocator), then
# glibc's own malloc_info counts the heaps (arenas) the process ended up with.
COUNT_HEAPS = """
import ctypes, sys, tempfile, threading
from galaxy_cellxgene.allocator import limit_arenas
if sys.argv[1] == "cap":
    assert limit_arenas({})
barrier, keep = threading.Barrier(8), []
def work():
    barrier.wait()
    keep.append(bytearray(100_000))
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile("r") as out:
    stream = ctypes.c_void_p(libc.fopen(out.name.encode(), b"w"))
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(out.read().count("<heap nr="))
"""


def heaps(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    env["PYTHONPATH"] = str(TOOL_DIR)
    run = subprocess.run([sys.executable, "-c", COUNT_HEAPS, mode], env=env, capture_output=True, text=True, check=True)
    return int(run.stdout)


def test_the_admins_setting_wins() -> None:
    assert limit_arenas({"MALLOC_ARENA_MAX": "4"}) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's arena cap is glibc's")
def test_threads_share_the_capped_arenas() -> None:
    assert heaps("none") > ARENAS  # without the cap, busy threads each get a heap
    assert heaps("cap") <= ARENAS
