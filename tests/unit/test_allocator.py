"""allocator.py caps glibc's malloc arenas for the viewer, unless the admin already chose."""

from __future__ import annotations

import platform

import pytest
from galaxy_cellxgene.allocator import limit_arenas


def test_the_admins_setting_wins() -> None:
    assert limit_arenas({"MALLOC_ARENA_MAX": "4"}) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's arena cap is glibc's")
def test_glibc_takes_the_cap() -> None:
    assert limit_arenas({}) is True
