"""Answer only the job's owner: a WSGI layer in front of the viewer (inside the entry-path gate).

gx-it-proxy checks only the key and token in the URL, so whoever holds the entry-point URL
(a shared screen, a browser history, a pasted link) would otherwise have the viewer, the
labels and the Save, Export and Finish buttons. The proxy forwards the browser's Galaxy
session cookie unchanged and adds nothing naming the user, so we ask Galaxy: the request's
`galaxysession` cookie is resolved with `GET {galaxy}/api/users/current` (galaxy_client.py)
and its email compared with the job owner's (`$__user_email__`, GALAXY_CELLXGENE_OWNER).

- the owner: passed on; the cookie is remembered in memory (GalaxyLink.remember) for Export
  and the remote saver, which act as the owner with it;
- another signed-in user, an anonymous session, no cookie: 403 with a short page;
- Galaxy unreachable or failing: 503 (fail closed), never cached;
- answers are cached per cookie digest for CACHE_SECONDS, at most CACHE_SIZE cookies.

`GET /health` passes unchecked: it says only "pass" and container probes carry no cookie.
GALAXY_CELLXGENE_OWNER_CHECK=off (an admin's destination setting) turns the check off where the
cookie cannot arrive (a domain-based entry point on a domain the Galaxy cookie does not cover);
docs/security.md and docs/admin.md say what then protects the viewer.
"""

from __future__ import annotations

import hashlib
import html
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping

from galaxy_cellxgene.galaxy_client import GalaxyCallError, GalaxyLink, cookie_from_header
from galaxy_cellxgene.web import StartResponse, WsgiApp, respond

log = logging.getLogger("galaxy_cellxgene.owner")

ENV_OWNER = "GALAXY_CELLXGENE_OWNER"
ENV_CHECK = "GALAXY_CELLXGENE_OWNER_CHECK"
OFF_VALUES = ("off", "false", "0", "no")
CACHE_SECONDS = 60.0
CACHE_SIZE = 256
ENVIRON_COOKIE = "galaxy_cellxgene.owner_cookie"

# Resolves a session cookie to the user's email (None: anonymous); raises GalaxyCallError
# when Galaxy cannot answer.
Resolver = Callable[[str], "str | None"]


def check_enabled(env: Mapping[str, str]) -> bool:
    return env.get(ENV_CHECK, "").strip().lower() not in OFF_VALUES


def owner_from_env(env: Mapping[str, str]) -> str | None:
    """The owner to check against, or None: the check is switched off, or no owner is known
    (a run outside Galaxy, where the entry-path gate is off too)."""
    owner = env.get(ENV_OWNER, "").strip()
    return owner.lower() if owner and check_enabled(env) else None


def galaxy_resolver(link: GalaxyLink) -> Resolver:
    def resolve(cookie: str) -> str | None:
        try:
            user = link.client(cookie).current_user()
        except GalaxyCallError as err:
            # Galaxy answers a malformed or unknown cookie with 400 ("Wrong guid"), an expired
            # one with 401/403: no session, so nobody. Only no answer or a 5xx is "cannot say".
            if err.galaxy_status is not None and 400 <= err.galaxy_status < 500:
                return None
            raise
        email = user.get("email") if isinstance(user, dict) else None
        return str(email).strip().lower() if email else None

    return resolve


class OwnerGate:
    """Pass the owner's requests to `app`; 403 everyone else; 503 while Galaxy cannot say."""

    def __init__(
        self,
        app: WsgiApp,
        owner: str,
        link: GalaxyLink,
        resolve: Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
        cache_seconds: float = CACHE_SECONDS,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.app = app
        self.owner = owner.strip().lower()
        self.link = link
        self.resolve = resolve or galaxy_resolver(link)
        self.clock = clock
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        # sha256(cookie) -> (expiry, is_owner): the cookie itself is never a key we keep.
        self._cache: OrderedDict[str, tuple[float, bool]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if environ.get("PATH_INFO", "") == "/health" and method in ("GET", "HEAD"):
            return self.app(environ, start_response)
        cookie = cookie_from_header(environ.get("HTTP_COOKIE", ""), self.link.cookie_name)
        if cookie is None:
            return _refuse(start_response, "403 Forbidden", NOT_SIGNED_IN)
        try:
            is_owner = self.is_owner(cookie)
        except GalaxyCallError as err:
            log.warning("owner check: Galaxy did not answer: %s", err)
            return _refuse(start_response, "503 Service Unavailable", GALAXY_DOWN)
        if not is_owner:
            return _refuse(start_response, "403 Forbidden", NOT_OWNER)
        self.link.remember(cookie)
        environ[ENVIRON_COOKIE] = cookie
        return self.app(environ, start_response)

    def is_owner(self, cookie: str) -> bool:
        digest = hashlib.sha256(cookie.encode()).hexdigest()
        now = self.clock()
        with self._lock:
            cached = self._cache.get(digest)
            if cached is not None and cached[0] > now:
                self._cache.move_to_end(digest)
                return cached[1]
        email = self.resolve(cookie)  # outside the lock: one slow answer must not stall the rest
        verdict = email is not None and email == self.owner
        with self._lock:
            self._cache[digest] = (now + self.cache_seconds, verdict)
            self._cache.move_to_end(digest)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return verdict

    def cached(self) -> int:
        with self._lock:
            return len(self._cache)


NOT_SIGNED_IN = (
    "This viewer answers only the Galaxy user who started it, and this browser sent no Galaxy session. "
    "Sign in to Galaxy in this browser as that user, then open the viewer again from Galaxy "
    "(User > Interactive Tools)."
)
NOT_OWNER = (
    "This viewer belongs to another Galaxy user: only the user who started it can open it. "
    "To look at the same dataset, import it and start your own viewer."
)
GALAXY_DOWN = (
    "This viewer could not ask Galaxy who you are, so it answers no one for now. "
    "Reload in a minute; if this persists, tell your Galaxy admin (the job log says why)."
)


def _refuse(start_response: StartResponse, status: str, message: str) -> list[bytes]:
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>cellxgene: not available</title></head>"
        f"<body><h1>cellxgene: {html.escape(status[4:])}</h1><p>{html.escape(message)}</p></body></html>"
    )
    return respond(start_response, status, page, "text/html; charset=utf-8")


def gate(app: WsgiApp, link: GalaxyLink, env: Mapping[str, str]) -> WsgiApp:
    """`app` guarded by the owner check, or `app` itself when the check is off (see owner_from_env).
    With the check off, requests still carry their own cookie: Export uses it (ENVIRON_COOKIE is
    not set, so the routes read the request's header), and Galaxy allows only what that user may."""
    owner = owner_from_env(env)
    return OwnerGate(app, owner, link) if owner else app
