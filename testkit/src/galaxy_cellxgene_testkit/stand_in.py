"""Stand-ins for what cannot run inside a unit or integration test: a JSON HTTP service.

Only for tests that must see what the runtime sends (keys, upload bodies) or make the far end
misbehave on purpose; the Galaxy suite talks to a real Galaxy.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet request handler that answers JSON."""

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def answer(self, body: Any, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
