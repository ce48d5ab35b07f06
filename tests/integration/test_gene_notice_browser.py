"""A person in headless Chromium opens a view while its column store is still being built (held back
by another job's lock, support/held_store.py): the cells are drawn, the page says that genes open
when ready, a gene chosen meanwhile waits (no error, no frozen page) and shows once the store is
built, and the notice goes away. Debian's /usr/bin/chromium through Playwright; no Galaxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from playwright.sync_api import expect
from support.browser_fixture import LAPTOP_VIEWPORT, empty_folder, new_page
from support.cellxgene_ui import select_only, wait_for_cells
from support.held_store import another_job_building, held_back_view
from support.page_health import PageWatch

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser" / "gene-notice"
N_CELLS = 600


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    shots = empty_folder(SHOTS)
    with new_page(chromium, LAPTOP_VIEWPORT, lambda page: page.screenshot(path=str(shots / "99-at-end.png"))) as page:
        yield page


def test_the_page_says_genes_open_when_ready_and_a_gene_chosen_meanwhile_shows(runtime, tmp_path, page) -> None:
    X = sp.random(N_CELLS, 30, density=0.3, format="csr", dtype=np.float32, random_state=np.random.default_rng(9))
    genes_answered: list[int] = []
    page.on("requestfinished", lambda r: "/data/var" in r.url and genes_answered.append(r.response().status))
    with another_job_building(tmp_path / "cache"):
        job = held_back_view(runtime, tmp_path, X)
        watch = PageWatch(page, lambda url: url.startswith(job.url))
        page.goto(job.url)
        wait_for_cells(page, N_CELLS, N_CELLS)  # every cell drawn while the store is built
        notice = page.locator("#galaxy-cellxgene-genes")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text("genes open when ready; everything else works now")
        page.screenshot(path=str(SHOTS / "01-building.png"))

        page.get_by_test_id("gene-search").fill("g4")
        page.get_by_test_id("suggest-menu-item-g4").click()
        expect(notice).to_contain_text("your gene opens when ready")
        assert select_only(page, "cell_type", "NK", N_CELLS) == N_CELLS // 3  # the page still works
        assert genes_answered == []  # the gene waits for the store
        page.screenshot(path=str(SHOTS / "02-gene-waiting.png"))
    # The other job is done: this view builds its store, the gene arrives, the notice goes.
    expect(page.get_by_test_id("colorby-g4")).to_be_enabled(timeout=60_000)
    expect(notice).to_be_hidden(timeout=30_000)
    assert genes_answered and set(genes_answered) == {200}
    page.screenshot(path=str(SHOTS / "03-ready.png"))
    watch.assert_clean(page, "the viewer while its store was built")
