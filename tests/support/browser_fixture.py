"""Headless Debian chromium driven by Playwright, logged in to the local Galaxy.

Never downloads a browser: Playwright starts /usr/bin/chromium (Debian's `chromium`
package; `.ci/run` installs it). Screenshots of every step go to test-artifacts/browser/
<test name>/ (git-ignored) so a failed run can be looked at.

Register with `pytest_plugins = ["support.browser_fixture"]` in tests/conftest.py; the
`galaxy` fixture comes from support.galaxy_fixture.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from galaxy_cellxgene_testkit.chromium import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
VIEWPORT = {"width": 1920, "height": 1080}
# A laptop window, wide enough for cellxgene's page (1240 px at least).
LAPTOP_VIEWPORT = {"width": 1400, "height": 860}


DOCS_IMG = ROOT / "docs" / "img"
# GALAXY_CELLXGENE_DOCS_IMG=1 refreshes the README's pictures from a passing run.
UPDATE_DOCS = os.environ.get("GALAXY_CELLXGENE_DOCS_IMG") == "1"


@dataclass
class Shots:
    """Numbered screenshots of one test, in the order the steps happened."""

    directory: Path
    taken: list[Path] = field(default_factory=list)
    for_docs: dict[str, Path] = field(default_factory=dict)

    def __call__(self, page: Any, name: str, doc: str | None = None, **kwargs: Any) -> Path:
        path = self.directory / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), **kwargs)
        self.taken.append(path)
        if doc:
            self.for_docs[doc] = path
        return path

    def publish(self) -> None:
        """Copy the pictures marked for the README to docs/img (only when asked to)."""
        if not UPDATE_DOCS:
            return
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        for doc, path in self.for_docs.items():
            shutil.copyfile(path, DOCS_IMG / f"{doc}.png")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (browser tests never download one)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def empty_folder(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@contextlib.contextmanager
def new_page(chromium: Any, viewport: dict[str, int], last_shot: Callable[[Any], object]) -> Iterator[Any]:
    """A page in a fresh browser context (no cookies), closed after `last_shot` took its picture."""
    context = chromium.new_context(viewport=viewport)
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        yield page
    finally:
        # The last picture is the one that explains a failure; the page may be gone, and
        # then the test's own error is what matters.
        with contextlib.suppress(Exception):
            last_shot(page)
        context.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(empty_folder(ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)))


@pytest.fixture
def browser_page(chromium: Any, shots: Shots) -> Iterator[Any]:
    """A fresh browser context (no cookies) with a large window; closed after the test."""
    with new_page(chromium, VIEWPORT, lambda page: shots(page, "at-end")) as page:
        yield page


@pytest.fixture
def galaxy_page(browser_page: Any, galaxy: Any) -> Any:
    """The demo user logged in through Galaxy's login form."""
    log_in(browser_page, galaxy.url, galaxy.credentials["user_email"], galaxy.credentials["user_password"])
    return browser_page


@pytest.fixture
def fresh_history(galaxy: Any) -> Iterator[Callable[[str], str]]:
    """Make histories for one test; any viewer still running in them is stopped afterwards,
    so a failed test leaves no cellxgene process behind."""
    made: list[str] = []

    def make(name: str) -> str:
        history_id = galaxy.new_history(f"{name} {time.strftime('%H:%M:%S')}")
        made.append(history_id)
        return history_id

    yield make
    for entry_point in galaxy.get("entry_points", params={"running": "true"}):
        with contextlib.suppress(Exception):
            if galaxy.job(entry_point["job_id"], full=False).get("history_id") in made:
                galaxy.stop_entry_point(entry_point["id"])


def log_in(page: Any, url: str, email: str, password: str) -> None:
    page.goto(f"{url}/login/start")
    page.locator("#login-form-name").fill(email)
    page.locator("#login-form-password").fill(password)
    page.locator("button[name=login]").click()
    page.wait_for_url(lambda current: "/login" not in current, timeout=60_000)


def switch_to_history(page: Any, url: str, history_id: str) -> None:
    """Make the history current for this browser session (what 'Switch to history' does)."""
    response = page.request.put(f"{url}/history/set_as_current", params={"id": history_id})
    assert response.ok, f"set_as_current -> {response.status}: {response.text()[:500]}"
    page.goto(f"{url}/")
