"""A clean viewer page: no request failed, no error status, no broken image, no console error.

`PageWatch` listens to a Playwright page (every frame) from before the viewer loads and keeps
what went wrong for the viewer's own URLs. Exceptions are named, each with the reason it is
not a defect; anything else fails the test with the list of what was seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Allowed:
    """A named exception: `matches(url)` is true for the request (or console source) it forgives."""

    name: str
    why: str
    matches: Callable[[str], bool]


# Chromium asks every origin for /favicon.ico by itself (the page declares no icon). Under Galaxy
# that is Galaxy's own URL; a runtime started alone (the list tool's browser test) has no page at
# the origin's root, so the browser's own probe is a 404 that no page element depends on.
FAVICON = Allowed(
    "favicon probe",
    "the browser's automatic /favicon.ico request at the origin root, outside the viewer",
    lambda url: re.search(r"^https?://[^/]+/favicon\.ico$", url) is not None,
)

BROKEN_IMAGES = """() => [...document.images]
  .filter(img => img.complete && img.naturalWidth === 0)
  .map(img => img.currentSrc || img.src || img.alt)"""


@dataclass
class PageWatch:
    page: Any
    is_viewer: Callable[[str], bool]  # which URLs (requests, console sources) belong to the viewer
    allowed: tuple[Allowed, ...] = (FAVICON,)
    problems: list[str] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self) -> None:
        self.page.on("requestfinished", self._finished)
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)
        self.page.on("console", self._console)
        self.page.on("pageerror", self._page_error)

    def _forgiven(self, url: str) -> bool:
        return any(rule.matches(url) for rule in self.allowed)

    def _of_viewer(self, request: Any) -> bool:
        """A request the viewer's page made (or the navigation that loads it). Galaxy's launcher
        asks the entry point URL too, before navigating, and retries while gx-it-proxy has not
        loaded the route yet: its answers (a 502 "Proxy target missing") are not the viewer's."""
        if request.url.endswith("/favicon.ico"):
            return True
        try:
            frame_url = request.frame.url
        except Exception:  # a request of no frame (service worker): not the page's
            return False
        if request.is_navigation_request():
            return self.is_viewer(request.url)
        return self.is_viewer(frame_url)

    def _finished(self, request: Any) -> None:
        if self._of_viewer(request):
            self.requests += 1

    def _failed(self, request: Any) -> None:
        url = request.url
        failure = request.failure or ""
        # A navigation away (Finish's cover, "All datasets") cancels what is still loading: not a fault.
        if "ERR_ABORTED" in failure:
            return
        if self._of_viewer(request) and not self._forgiven(url):
            self.problems.append(f"request failed: {request.method} {url}: {failure}")

    def _response(self, response: Any) -> None:
        url = response.url
        if response.status >= 400 and self._of_viewer(response.request) and not self._forgiven(url):
            self.problems.append(f"HTTP {response.status}: {response.request.method} {url}")

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        source = (message.location or {}).get("url", "")
        # Chromium logs each error status as "Failed to load resource"; the response listener
        # already judged those, knowing which frame asked (the console message does not).
        if message.text.startswith("Failed to load resource"):
            return
        if self.is_viewer(source) and not self._forgiven(source):
            self.problems.append(f"console error from {source}: {message.text}")

    def _page_error(self, error: Any) -> None:
        stack = f"{error} {getattr(error, 'stack', '')}"
        if self.is_viewer(self.page.url) or any(self.is_viewer(word) for word in stack.split()):
            self.problems.append(f"uncaught exception: {error}")

    def broken_images(self, frame: Any) -> list[str]:
        return list(frame.evaluate(BROKEN_IMAGES))

    def assert_clean(self, frame: Any, what: str) -> None:
        """No problem so far, no broken image in `frame`, and the viewer's requests were seen."""
        problems = list(self.problems)
        problems += [f"broken image: {src}" for src in self.broken_images(frame)]
        assert self.requests > 0, f"{what}: no request of the viewer was observed (wrong URL filter?)"
        assert not problems, f"{what}: the page is not clean:\n" + "\n".join(problems)
