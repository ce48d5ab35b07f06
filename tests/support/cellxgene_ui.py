"""What a person does in cellxgene 1.3.0's page, as Playwright steps.

cellxgene's own data-testid attributes name every control used here. Cells are selected the
way a user picks a cluster: untick a categorical column, tick one of its values. That is
exact (every cell of the value, no pixel geometry) and shows in the embedding's cell count.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import expect

# The windows the Galaxy controls must fit beside the plot (issue 26): laptop to desktop.
WINDOW_SIZES = [(1366, 768), (1600, 900), (1920, 1080)]


def _tick(checkbox: Any) -> None:
    # Blueprint draws its own indicator over the <input>; the click belongs to the <label>.
    checkbox.locator("xpath=..").click()


def wait_for_cells(frame: Any, shown: int, total: int, timeout: float = 30_000) -> None:
    expect(frame.get_by_test_id("layout-choice")).to_contain_text(f"{shown} out of {total} cells", timeout=timeout)


def select_only(frame: Any, column: str, value: str, total: int) -> int:
    """Select exactly the cells whose `column` is `value`; returns how many that is."""
    value_box = frame.get_by_test_id(f"categorical-value-select-{column}-{value}")
    if not value_box.is_visible():
        frame.get_by_test_id(f"{column}:category-expand").click()
    expect(value_box).to_be_visible()
    column_box = frame.get_by_test_id(f"{column}:category-select")
    # All, some (indeterminate) or none of the values are ticked: click until none are.
    for _ in range(3):
        if not column_box.is_checked() and not column_box.evaluate("e => e.indeterminate"):
            break
        _tick(column_box)
    wait_for_cells(frame, 0, total)
    _tick(value_box)
    count = int(frame.get_by_test_id(f"categorical-value-count-{column}-{value}").inner_text())
    wait_for_cells(frame, count, total)
    return count


def create_category(frame: Any, name: str) -> None:
    frame.get_by_test_id("open-annotation-dialog").click()
    frame.get_by_test_id("new-category-name").fill(name)
    frame.get_by_test_id("submit-category").click()
    expect(frame.get_by_test_id(f"{name}:category-label")).to_be_visible()


def label_selection(frame: Any, category: str, label: str, expected: int) -> None:
    """'Add label & assign N selected cells' in the category's menu."""
    frame.get_by_test_id(f"{category}:see-actions").click()
    frame.get_by_test_id(f"{category}:add-new-label-to-category").click()
    frame.get_by_test_id(f"{category}:new-label-name").fill(label)
    frame.get_by_role("button", name=f"Add label & assign {expected} selected cells").click()
    count = frame.get_by_test_id(f"categorical-value-count-{category}-{label}")
    if not count.is_visible():  # a new category starts collapsed
        frame.get_by_test_id(f"{category}:category-expand").click()
    expect(count).to_have_text(str(expected))


def runtime_status(frame: Any) -> dict[str, Any]:
    """The runtime's own account of saves (GET galaxy/status, relative to the viewer)."""
    return frame.evaluate("() => fetch('galaxy/status', {cache: 'no-store'}).then(r => r.json())")


def wait_until_saved(frame: Any, saves_before: int, timeout: float = 30.0) -> dict[str, Any]:
    """cellxgene autosaves every 2.5 s: wait for a save after `saves_before` and 'All saved'."""
    deadline = time.monotonic() + timeout
    while True:
        status = runtime_status(frame)
        autosave = frame.locator("#autosave").inner_text()
        if status["label_saves"] > saves_before and "All saved" in autosave:
            return status
        if status.get("last_error"):
            raise AssertionError(f"the runtime reports a save error: {status['last_error']}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no completed save within {timeout:.0f} s: {status}, autosave={autosave!r}")
        frame.page.wait_for_timeout(250)


def run_diffexp(frame: Any, column: str, value_1: str, value_2: str, total: int) -> tuple[int, int]:
    """Set 1 = cells of `value_1`, set 2 = cells of `value_2`, then cellxgene's diffexp button.

    Returns the two sets' cell counts.
    """
    n_1 = select_only(frame, column, value_1, total)
    frame.get_by_test_id("cellset-button-1").click()
    expect(frame.get_by_test_id("cellset-button-1")).to_contain_text(f"{n_1} cells")
    n_2 = select_only(frame, column, value_2, total)
    frame.get_by_test_id("cellset-button-2").click()
    expect(frame.get_by_test_id("cellset-button-2")).to_contain_text(f"{n_2} cells")
    with frame.page.expect_response(lambda r: "diffexp/obs" in r.url, timeout=120_000) as answer:
        frame.get_by_test_id("diffexp-button").click()
    assert answer.value.ok, answer.value.text()
    # cellxgene shows the result as two gene sets, "Pop1 high (<time>)" and "Pop2 high (<time>)".
    # Each run adds a new pair (the newest first).
    expect(frame.locator("[data-testid^='Pop1 high'][data-testid$=':geneset-name']").first).to_be_visible()
    return n_1, n_2


def diffexp_genes(frame: Any, population: int) -> list[str]:
    """The genes cellxgene lists for 'Pop<population> high', in its order (only that set expanded)."""
    name = frame.locator(f"[data-testid^='Pop{population} high'][data-testid$=':geneset-name']").first
    geneset = (name.get_attribute("data-testid") or "").rsplit(":", 1)[0]
    labels = frame.locator("[data-testid$=':gene-label']")
    if not labels.count():
        frame.get_by_test_id(f"{geneset}:geneset-expand").click()
    expect(labels.first).to_be_visible()
    return [t.rsplit(":", 1)[0] for t in labels.evaluate_all("els => els.map(e => e.getAttribute('data-testid'))")]


def assert_controls_clear_of_the_plot(frame: Any) -> None:
    """The Galaxy controls box covers neither the embedding selector nor any of the plot."""
    boxes = frame.evaluate(
        """() => {
          const rect = e => e && e.getBoundingClientRect().toJSON();
          const selector = document.querySelector('[data-testid=layout-choice]');
          return {controls: rect(document.querySelector('#galaxy-cellxgene-controls')), selector: rect(selector),
                  plot: rect(selector && selector.closest('div[style*=grid-area]'))};
        }"""
    )
    controls, selector = boxes["controls"], boxes["selector"]
    assert controls and selector, boxes

    def overlap(a: dict, b: dict) -> bool:
        return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]

    assert not overlap(controls, selector), f"the Galaxy controls cover the embedding selector: {boxes}"
    if boxes["plot"]:
        # over the right sidebar, or over the left one when the frame is narrower than cellxgene's page
        beside = controls["left"] >= boxes["plot"]["right"] - 1 or controls["right"] <= boxes["plot"]["left"] + 1
        assert beside, f"the Galaxy controls reach into the plot: {boxes}"
    text = frame.get_by_test_id("layout-choice").inner_text()
    assert "out of" in text and "cells" in text, text


def pick_subset(frame: Any, category: str, labels: list[str], button: str) -> None:
    """ "New dataset from cells" (subset.js): open the panel, choose the category and its labels,
    then click `button` (#galaxy-cellxgene-subset-now or #galaxy-cellxgene-subset-finish)."""
    panel = frame.locator("#galaxy-cellxgene-subset-panel")
    if not panel.is_visible():
        frame.locator("#galaxy-cellxgene-subset").click()
    frame.locator("#galaxy-cellxgene-subset-category").select_option(category)
    for label in labels:
        panel.get_by_label(label, exact=True).check()
    frame.locator(button).click()
