"""The one health probe, and the one wait that every readiness check uses.

`healthy` speaks plain http.client: the benchmark polls it every 10 ms while it times a start,
so a probe must cost next to nothing; the runtime and plain cellxgene both answer `/health`.
"""

from __future__ import annotations

import http.client
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


def healthy(url: str, timeout: float = 2.0) -> bool:
    """True when GET <url>health answers 200 (url: the server's base URL, ending in "/")."""
    parts = urlsplit(url if url.endswith("/") else url + "/")
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", parts.path + "health")
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def wait_until(
    condition: Callable[[], T], timeout: float, what: str, proc: subprocess.Popen | None = None, interval: float = 0.05
) -> T:
    """Call condition until it returns something true; AssertionError after timeout seconds,
    or as soon as proc (the process that should make it true) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}")
        time.sleep(interval)  # the poll interval of a check with a deadline, not a stand-in for one
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
