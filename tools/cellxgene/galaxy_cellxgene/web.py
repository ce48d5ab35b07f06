"""What every route of the runtime shares: uncached answers, the quiet paths, the finish guard.

Used by cellxgene's Flask app (app.py, limits.py), the entry-path gate (entry_path.py) and the
list tool's dispatcher (multi/routes.py), which speak WSGI directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

StartResponse = Callable[..., object]
WsgiApp = Callable[[dict, StartResponse], Iterable[bytes]]

STATIC_DIR = Path(__file__).with_name("static")
MIB = 1 << 20
# waitress refuses anything larger before a byte reaches Flask (its default is 1 GiB); the routes
# have tighter limits of their own (limits.py).
MAX_REQUEST_BYTES = 256 * MIB
# Probes that must not count as use: the idle timeout ends sessions nobody looks at.
QUIET_PATHS = frozenset({"/health", "/galaxy/status"})

# The page's finish.js (the viewer's and the list tool's landing page) sends this header. A page on
# another site can make the browser POST a form here, but cannot add a custom header without a
# CORS preflight, which the viewer never grants (same rule as galaxy_export.CSRF_HEADER).
FINISH_HEADER = "X-Galaxy-Cellxgene"
FINISH_REFUSED = f"Finish refused: the request lacks the {FINISH_HEADER} header the viewer's own page sends."


def is_quiet(path: str) -> bool:
    return path in QUIET_PATHS


def finish_allowed(headers) -> bool:
    return headers.get(FINISH_HEADER) == "finish"


def no_store(response):
    """A Flask response that no browser or proxy keeps."""
    response.headers["Cache-Control"] = "no-store"
    return response


def respond(
    start_response: StartResponse,
    status: str,
    body: bytes | str,
    content_type: str,
    extra: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    """A whole WSGI answer, uncached and never sniffed as another type."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            *extra,
        ],
    )
    return [data]


def redirect_to_slash(start_response: StartResponse, environ: dict, segment: str) -> list[bytes]:
    """`…/segment` -> `segment/`: the page resolves everything against its own URL, which must end
    in "/". The Location is relative, so the redirect works under any proxy prefix."""
    query = environ.get("QUERY_STRING", "")
    location = segment + "/" + (f"?{query}" if query else "")
    return respond(start_response, "308 Permanent Redirect", b"", "text/plain", [("Location", location)])


def mounted(environ: dict, prefix: str, path: str) -> dict:
    """The environ an app mounted at `prefix` sees: the prefix moved to SCRIPT_NAME, `path` left."""
    inner = dict(environ)
    inner["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "").rstrip("/") + prefix
    inner["PATH_INFO"] = path
    return inner


def request_headers(environ: dict) -> dict[str, str]:
    """The request headers of a WSGI environ, by their HTTP names (X-Galaxy-Cellxgene)."""
    return {key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")}
