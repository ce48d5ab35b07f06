"""The job log: one prefixed line on stdout per event a Galaxy user or admin may look for."""

from __future__ import annotations

PREFIX = "[galaxy-cellxgene]"


def say(message: str) -> None:
    print(f"{PREFIX} {message}", flush=True)
