"""Serve one session with waitress, in one process, and end it the way Galaxy needs.

One process, because cellxgene caches labels per process (two workers give stale reads).
Inside a container Galaxy publishes the declared port, so we bind it on 0.0.0.0; outside one
nothing tells Galaxy where we listen, so we bind a free port and write
`../container_runtime.json`, the file Galaxy's container monitor would have written.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from wsgiref.types import WSGIApplication

from galaxy_cellxgene import entry_path, owner_gate
from galaxy_cellxgene.durable import atomic_write
from galaxy_cellxgene.exit_codes import EXIT_TERMINATED
from galaxy_cellxgene.galaxy_client import GalaxyLink
from galaxy_cellxgene.joblog import say
from galaxy_cellxgene.options import ServerOptions


class ServedSession(Protocol):
    """What serve() drives: one dataset (app.Session) or a list of them (multi.MultiSession)."""

    @property
    def app(self) -> WSGIApplication: ...

    @property
    def galaxy(self) -> GalaxyLink: ...  # Galaxy's URL and the owner's session (owner_gate.py)

    @property
    def finished(self) -> threading.Event: ...  # set once the session has finished

    def idle_for(self) -> float:
        """Seconds with no request running anywhere in the session."""
        ...

    def finish(self, reason: str) -> dict:
        """Freeze saves, write what a clean finish writes, set `finished`; idempotent."""
        ...

    def status(self) -> dict:
        """At least finish_reason, finish_error, label_saves and gene_set_saves (the job log's last lines)."""
        ...

    def hold_saves(self, timeout: float) -> bool:
        """Wait up to `timeout` s for a save in flight, then keep every later one out (SIGTERM)."""
        ...

    def at_exit(self, terminated: bool) -> None:
        """The process ends: after SIGTERM (`terminated`) or a clean finish (remote_save.at_exit)."""
        ...


@dataclass(frozen=True)
class Binding:
    host: str  # where waitress listens
    port: int  # 0: let the OS choose
    advertise_host: str  # what the proxy should connect to
    register: bool  # write container_runtime.json


def in_container(env: Mapping[str, str]) -> bool:
    """Our image sets the flag. Marker files (/.dockerenv) are no proof: a Galaxy that itself
    runs in a container, without a container for this job, would see them too."""
    return env.get("GALAXY_CELLXGENE_IN_CONTAINER", "").strip().lower() in ("1", "true", "yes")


def plan_binding(register: str, port: int, host: str | None, env: Mapping[str, str], container: bool) -> Binding:
    """Decide where to listen and whether to register; never both a fixed port and a registration."""
    if register == "always" or (register == "auto" and not container):
        # A wildcard listen address is no address to connect to.
        listen_host = host if host not in ("0.0.0.0", "::") else None
        advertise = env.get("GALAXY_CELLXGENE_HOST") or listen_host or "127.0.0.1"
        return Binding(host or advertise, 0, advertise, True)
    return Binding(host or ("0.0.0.0" if container else "127.0.0.1"), port, host or "127.0.0.1", False)


def runtime_json(declared_port: int, host: str, port: int) -> dict:
    return {str(declared_port): {"tool_port": declared_port, "host": host, "port": port, "protocol": "tcp"}}


def write_runtime_json(path: Path, content: dict) -> None:
    atomic_write(path, json.dumps(content))


def run_server(session: ServedSession, server: ServerOptions, idle_timeout: float | None) -> int:
    """Bind where Galaxy expects (plan_binding), register if need be, and serve until finished."""
    return serve_session(session, listen(session.app, session.galaxy, server), idle_timeout)


@dataclass
class Listening:
    """A server taking requests: its app may be a front that a session takes over later (early_front.py)."""

    server: object  # waitress's server
    url: str


def listen(app: WSGIApplication, galaxy: GalaxyLink, options: ServerOptions) -> Listening:
    """Listen where Galaxy expects (plan_binding) behind the entry-path and owner gates, register
    the port for Galaxy's proxy, and serve `app` from a thread; a SIGTERM from here on ends the job."""
    binding = plan_binding(options.register, options.port, options.host, os.environ, in_container(os.environ))
    runtime_json_path = options.runtime_json.resolve() if binding.register else None
    return start(app, galaxy, binding, options.port, runtime_json_path, options.threads)


def start(
    app: WSGIApplication,
    galaxy: GalaxyLink,
    binding: Binding,
    declared_port: int,
    runtime_json_path: Path | None,
    threads: int = 8,
) -> Listening:
    from waitress import create_server

    from galaxy_cellxgene.web import MAX_REQUEST_BYTES

    prefix = entry_path.prefix_from_env(os.environ)
    server = create_server(
        # Outside: the secret path (a direct connection lacks it); inside: the owner (a leaked
        # link lacks the owner's Galaxy session).
        entry_path.gate(owner_gate.gate(app, galaxy, os.environ), prefix),
        host=binding.host,
        port=binding.port,
        threads=threads,
        ident="cellxgene",
        # cellxgene sends whole matrices; the default 18 KB send buffer costs many syscalls.
        send_bytes=1 << 16,
        clear_untrusted_proxy_headers=True,
        max_request_body_size=MAX_REQUEST_BYTES,
    )
    port = int(server.effective_port)
    signal.signal(signal.SIGTERM, _terminate_before_session)
    threading.Thread(target=server.run, name="waitress", daemon=True).start()

    url = f"http://{binding.advertise_host}:{port}/"
    if binding.register and runtime_json_path is not None:
        write_runtime_json(runtime_json_path, runtime_json(declared_port, binding.advertise_host, port))
        say(f"registered {runtime_json_path} for Galaxy's proxy")
    say(f"ready on {url}" + (" (serving only under the entry point path)" if prefix else ""))
    return Listening(server, url)


def serve_session(session: ServedSession, listening: Listening, idle_timeout: float | None) -> int:
    """Serve until the session is finished (its Finish, the idle timeout, SIGINT) or SIGTERM."""
    _install_signal_handlers(session)
    while not session.finished.wait(timeout=_wait_step(session, idle_timeout)):
        if idle_timeout is not None and session.idle_for() >= idle_timeout:
            say(f"no activity for {idle_timeout:.0f} s: finishing")
            session.finish("idle timeout")

    server = listening.server
    _drain(server)
    session.at_exit(terminated=False)
    status = session.status()
    say(
        f"finished ({status['finish_reason']}): {status['label_saves']} label saves, "
        f"{status['gene_set_saves']} gene-set saves"
    )
    if status["finish_error"]:
        say(status["finish_error"])
    with contextlib.suppress(Exception):
        server.close()
    return 0


def _terminate_before_session(signum, frame) -> None:
    # Nothing is made before the session exists: the user's previous work is in the outputs already.
    say("terminated (Galaxy's Stop) while cellxgene was loading")
    sys.stdout.flush()
    os._exit(EXIT_TERMINATED)


def _wait_step(session: ServedSession, idle_timeout: float | None) -> float:
    if idle_timeout is None:
        return 3600.0
    remaining = idle_timeout - session.idle_for()
    return max(0.05, min(remaining, 5.0))


def _drain(server, deadline: float = 3.0) -> None:
    """Let the finish response reach the browser before the process goes."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        channels = [c for c in list(server._map.values()) if hasattr(c, "total_outbufs_len")]
        if all(c.total_outbufs_len == 0 and not c.requests for c in channels):
            return
        time.sleep(0.02)


def _install_signal_handlers(session: ServedSession) -> None:
    def terminate(signum, frame):
        # Every save is already in its output (atomic rename); only wait for one in flight.
        session.hold_saves(0.5)
        session.at_exit(terminated=True)
        say("terminated (Galaxy's Stop): the outputs hold the last completed save")
        sys.stdout.flush()
        os._exit(EXIT_TERMINATED)

    def interrupt(signum, frame):
        threading.Thread(target=session.finish, args=("interrupted",), daemon=True).start()

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, interrupt)
