"""The Galaxy session a test's browser would carry, sent with every request to a viewer.

The viewer answers only the job's owner (the runtime's owner_gate.py): it resolves the
`galaxysession` cookie each request carries through Galaxy's API. A browser that signed in to
Galaxy sends that cookie to every path of Galaxy's origin, the entry points included. Tests
speak to viewers with `requests` (UiClient), so testkit does what the browser does: once a
user signs in (GalaxyApi.sign_in), every UiClient for a URL on that origin sends the cookie.
The cookie is remembered per origin (scheme, host and port: one Galaxy per port here).
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import requests

COOKIE_NAME = "galaxysession"

_cookies: dict[str, str] = {}
_lock = threading.Lock()


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def remember(url: str, cookie: str) -> None:
    """The session later UiClients for `url`'s origin send (the last sign-in wins, as in a browser)."""
    with _lock:
        _cookies[origin(url)] = cookie


def forget(url: str) -> None:
    with _lock:
        _cookies.pop(origin(url), None)


def cookie_for(url: str) -> str | None:
    with _lock:
        return _cookies.get(origin(url))


def cookie_header(cookie: str | None) -> dict[str, str]:
    """The Cookie header a browser signed in with `cookie` sends (no header: signed out)."""
    return {"Cookie": f"{COOKIE_NAME}={cookie}"} if cookie else {}


def get(url: str, *, like: str | None = None, **kwargs: Any) -> requests.Response:
    """`requests.get` as the signed-in browser: with the session remembered for the origin of
    `like` (default: `url` itself; `like` serves a direct connection to a viewer's port)."""
    return _send("GET", url, like, kwargs)


def post(url: str, *, like: str | None = None, **kwargs: Any) -> requests.Response:
    """`requests.post` as the signed-in browser (see `get`)."""
    return _send("POST", url, like, kwargs)


def _send(method: str, url: str, like: str | None, kwargs: dict[str, Any]) -> requests.Response:
    # `cookie=`: this user's session, where several users share one Galaxy (one origin).
    cookie = kwargs.pop("cookie", None) or cookie_for(like or url)
    headers = {**cookie_header(cookie), **(kwargs.pop("headers", None) or {})}
    timeout = kwargs.pop("timeout", 30)
    return requests.request(method, url, headers=headers, timeout=timeout, **kwargs)
