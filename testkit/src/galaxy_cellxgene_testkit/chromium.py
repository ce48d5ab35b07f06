"""Debian's chromium as the browser tests and the README's screenshots launch it (Playwright)."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("GALAXY_CELLXGENE_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialing Google hosts that this
# offline machine refuses; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
