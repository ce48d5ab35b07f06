"""Serve a Pulsar REST server (pulsar-app's WSGI app) on one address; run with the Pulsar venv's python.

    serve.py --config-dir DIR --host 127.0.0.1 --port 8913

pulsar-app 0.16 ships its WSGI app (`pulsar.web.wsgi.init_webapp`) but no server of its own
without paste or uWSGI; the standard library's threaded WSGI server is enough for one Galaxy
on one machine (each request is a short REST call or a file transfer). DIR holds app.yml
(scripts/pulsar.sh writes it) and is Pulsar's config directory.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class ThreadedServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    """One log line per request, through logging, without secrets."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Without the query string: Galaxy's client sends the private token (and whole command
        # lines) there.
        method, _, rest = (self.requestline or "").partition(" ")
        path = rest.split(" ")[0].split("?")[0]
        logging.getLogger("pulsar.http").info("%s %s %s %s", self.address_string(), method, path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logging.getLogger("pulsar.http").info("%s %s", self.address_string(), format % args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")

    from pulsar.web.wsgi import init_webapp

    app = init_webapp(config_dir=args.config_dir, app_conf_path=f"{args.config_dir}/app.yml")
    server = make_server(args.host, args.port, app, server_class=ThreadedServer, handler_class=QuietHandler)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    logging.getLogger("pulsar.serve").info("Pulsar REST server on http://%s:%d/", args.host, args.port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
