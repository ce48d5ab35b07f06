"""Spatial data in a real browser: squidpy's Visium test data (fetched pinned from PyPI,
tests/compat/foreign_corpus.json) opens on its tissue coordinates, drawn as the tissue.

At the entry point alone (the runtime serves cellxgene as the Galaxy job does; no Galaxy here):
what is checked is cellxgene's own page, in Debian's chromium.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from support.cellxgene_ui import wait_for_cells
from support.foreign_corpus import fetch_all, manifest_files

pytestmark = pytest.mark.browser


def test_spatial_dataset_opens_on_its_tissue(runtime, browser_page, shots) -> None:
    entry = next(e for e in manifest_files() if e["name"] == "squidpy_test_data")
    source = fetch_all()[entry["sha256"]]
    # The tissue first, then the UMAP: the first embedding chosen is the one the page opens on.
    job = runtime(source, "--embedding", "spatial", "--embedding", "X_umap")
    page = browser_page
    page.goto(job.url)
    wait_for_cells(page, 49, 49, timeout=60_000)
    # cellxgene's embedding button reads "<embedding shown>: N out of M cells".
    expect(page.get_by_test_id("layout-choice")).to_contain_text("spatial: 49 out of 49 cells")
    expect(page.get_by_test_id("layout-graph")).to_be_visible()
    page.get_by_test_id("colorby-leiden").click()  # the spots coloured by cluster, as on the tissue
    expect(page.get_by_test_id("colorby-leiden")).to_have_class(re.compile(r"bp\d?-active"))
    shots(page, "spatial-tissue", doc="spatial-tissue")
    shots.publish()
