"""Start a contender, wait until it serves the first gene, read its memory and CPU, stop it."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from galaxy_cellxgene_testkit.health import healthy

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Exactly what Chromium sends (seen from Debian's chromium 156 on http://127.0.0.1): Flask-Compress
# then answers with zstd, its first choice, so the server's compression cost is the real one.
BINARY_HEADERS = {"Accept": "application/octet-stream", "Accept-Encoding": "gzip, deflate, br, zstd"}
API = "/api/v0.2/"


class BenchError(RuntimeError):
    pass


# Servers started and not yet stopped: stopped at exit, so an interrupted run leaves none behind.
LIVE: dict[int, Started] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- /proc readings


def _ppid_map() -> dict[int, int]:
    # No /proc/PID/task/TID/children on this kernel: build the tree from every process's stat.
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # comm may contain spaces and parentheses: fields start after the last ')'.
        rest = stat[stat.rfind(b")") + 2 :].split()
        out[int(entry.name)] = int(rest[1])
    return out


def tree_pids(root: int) -> list[int]:
    parents = _ppid_map()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    result, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in parents or pid == root:
            result.append(pid)
        todo.extend(children.get(pid, []))
    return result


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of one live process (not its children)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0.0
    rest = stat[stat.rfind(b")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass
class TreeSample:
    hwm_kib: dict[int, int]  # pid -> VmHWM (the kernel's own peak-RSS mark)
    rss_kib: dict[int, int]
    cpu_s: dict[int, float]
    cmd: dict[int, str]

    @property
    def peak_kib(self) -> int:
        """Peak RSS of the largest process: the server, for every contender here."""
        return max(self.hwm_kib.values(), default=0)

    @property
    def rss_total_kib(self) -> int:
        return sum(self.rss_kib.values())

    @property
    def cpu_total_s(self) -> float:
        return sum(self.cpu_s.values())


def sample_tree(root: int) -> TreeSample:
    pids = tree_pids(root)
    return TreeSample(
        hwm_kib={p: _status_kib(p, "VmHWM") for p in pids},
        rss_kib={p: _status_kib(p, "VmRSS") for p in pids},
        cpu_s={p: cpu_seconds(p) for p in pids},
        cmd={p: cmdline(p) for p in pids},
    )


# --------------------------------------------------------------------------- HTTP


class Http:
    """One keep-alive connection, reconnecting when the server closes it (as a browser does)."""

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        for attempt in range(2):
            try:
                self.conn.request("GET", path, headers=headers or {})
                resp = self.conn.getresponse()
                body = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # An idle keep-alive socket the server already closed: retry once on a new one.
                self.conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def expression_path(column: str, gene: str) -> str:
    return f"{API}data/var?{quote('var:' + column, safe=':')}={quote(gene, safe='')}"


def layout_path(name: str) -> str:
    return f"{API}layout/obs?layout-name={quote(name)}"


def decode_body(headers: dict[str, str], body: bytes) -> bytes:
    encoding = headers.get("content-encoding", "identity")
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli

        return brotli.decompress(body)
    if encoding == "zstd":
        from backports import zstd

        return zstd.decompress(body)
    return body


# --------------------------------------------------------------------------- contenders


@dataclass
class Launch:
    """A contender for one input: steps run to completion, then the server command."""

    name: str
    server: Sequence[str]
    pre: list[Sequence[str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cleanup: list[Path] = field(default_factory=list)


@dataclass
class Started:
    launch: Launch
    proc: subprocess.Popen
    port: int
    t_start: float  # perf_counter() before the first step
    pre_s: float = 0.0
    pre_peak_kib: int = 0
    pre_cpu_s: float = 0.0
    t_health: float = 0.0
    t_cells: float = 0.0  # every obs column and the first embedding answered: the cells are drawn
    t_ready: float = 0.0
    var_column: str = ""
    encoding: str = ""  # Content-Encoding of the first expression answer
    ready_sample: TreeSample | None = None
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def health_s(self) -> float:
        return self.t_health - self.t_start

    @property
    def cells_s(self) -> float:
        return self.t_cells - self.t_start

    @property
    def ready_s(self) -> float:
        return self.t_ready - self.t_start

    def log_tail(self, n: int = 25) -> str:
        if self.log_path and self.log_path.exists():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""


def _run_step(argv: Sequence[str], env: dict[str, str], cwd: Path, log) -> tuple[float, int, float]:
    """Run one preparation step; wall seconds, peak RSS (KiB) and CPU seconds from wait4."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(f"step failed ({proc.returncode}): {' '.join(argv)}")
    return time.perf_counter() - t0, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def start(launch: Launch, port: int, cwd: Path, base_env: dict[str, str]) -> Started:
    env = {**base_env, **launch.env}
    cwd.mkdir(parents=True, exist_ok=True)
    log_path = cwd / f"{launch.name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - the server outlives this function
    t0 = time.perf_counter()
    pre_s = 0.0
    pre_peak = 0
    pre_cpu = 0.0
    for step in launch.pre:
        s, peak, cpu = _run_step([str(a).replace("{port}", str(port)) for a in step], env, cwd, log)
        pre_s += s
        pre_peak = max(pre_peak, peak)
        pre_cpu += cpu
    argv = [str(a).replace("{port}", str(port)) for a in launch.server]
    # Own session: the whole server tree can be stopped by its process-group id, nothing broader.
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    st = Started(launch, proc, port, t0, pre_s, pre_peak, pre_cpu, log_path=log_path)
    LIVE[proc.pid] = st
    return st


def wait_ready(
    st: Started,
    gene: str | Callable[[str], str],
    deadline_s: float = 180.0,
    poll_s: float = 0.01,
    request_timeout: float = 60.0,
    as_browser: bool = False,
) -> int:
    """Poll /health, then do what the page does before the first gene shows: schema, expression.
    `as_browser`: poll the page instead and load what a browser loads before the cells are drawn
    (the page, its scripts, config), as the runtime answers those before cellxgene has loaded.

    `gene` is a name, or a function of the var column the schema names genes by (the runtime may
    show symbols where plain cellxgene shows the index: gene_names.py). Returns the number of
    cells in the expression answer, so the caller can check it.
    """
    end = time.perf_counter() + deadline_s
    base_url = f"http://127.0.0.1:{st.port}/"
    while not (page_served(st.port) if as_browser else healthy(base_url, timeout=5)):
        if st.proc.poll() is not None:
            raise BenchError(f"{st.launch.name} exited {st.proc.returncode} before ready:\n{st.log_tail()}")
        if time.perf_counter() > end:
            raise BenchError(f"{st.launch.name} not healthy within {deadline_s} s:\n{st.log_tail()}")
        time.sleep(poll_s)  # poll interval of a readiness check with a deadline, not a stand-in for one
    st.t_health = time.perf_counter()
    client = Http(st.port, timeout=request_timeout)
    if as_browser:
        load_page(client, st.launch.name)
    status, _, body = client.get(API + "schema", {"Accept": "application/json"})
    if status != 200:
        raise BenchError(f"{st.launch.name}: schema {status}")
    schema = json.loads(body)["schema"]
    st.var_column = schema["annotations"]["var"]["index"]
    show_cells(client, schema, st.launch.name)
    st.t_cells = time.perf_counter()
    gene = gene(st.var_column) if callable(gene) else gene
    status, headers, body = client.get(expression_path(st.var_column, gene), BINARY_HEADERS)
    st.t_ready = time.perf_counter()
    client.close()
    if status != 200 or not body:
        raise BenchError(f"{st.launch.name}: first expression request gave {status}, {len(body)} bytes")
    st.ready_sample = sample_tree(st.pid)
    st.encoding = headers.get("content-encoding", "identity")
    return n_rows_of(decode_body(headers, body))


def page_served(port: int) -> bool:
    client = Http(port, timeout=5)
    with contextlib.suppress(OSError), contextlib.closing(client):
        return client.get("/", {"Accept": "text/html"})[0] == 200
    return False


def load_page(client: Http, name: str) -> None:
    """What a browser loads after the page and before the schema: its scripts and styles, config."""
    status, _, body = client.get("/", {"Accept": "text/html"})
    for path in re.findall(r'(?:src|href)="([^"]+)"', body.decode("utf-8", "replace")):
        client.get("/" + path, {"Accept": "*/*"})  # plain's page asks for an obsolete.js it lacks: a 404
    status, _, answer = client.get(API + "config", {"Accept": "application/json"})
    if status != 200 or not answer:
        raise BenchError(f"{name}: config: {status}")


def show_cells(client: Http, schema: dict, name: str) -> None:
    """What the page asks for before it draws every cell: each obs column, then the first embedding."""
    obs = schema["annotations"]["obs"]
    for column in [c["name"] for c in obs["columns"] if c["name"] != obs["index"]]:
        status, _, body = client.get(f"{API}annotations/obs?annotation-name={quote(column)}", BINARY_HEADERS)
        if status != 200 or not body:
            raise BenchError(f"{name}: obs column {column}: {status}")
    layouts = schema["layout"]["obs"]
    status, _, body = client.get(layout_path(layouts[0]["name"]), BINARY_HEADERS)
    if status != 200 or not body:
        raise BenchError(f"{name}: layout {layouts[0]['name']}: {status}")


def n_rows_of(fbs: bytes) -> int:
    # Imported here: the harness itself should not pay cellxgene's import time per call site.
    from server.common.fbs.matrix import decode_matrix_fbs

    return int(decode_matrix_fbs(fbs).shape[0])


def wait_rss_settled(st: Started, quiet_s: float = 1.5, deadline_s: float = 30.0) -> TreeSample:
    """Wait until the server tree's RSS stops growing (background work such as an index build done)."""
    end = time.perf_counter() + deadline_s
    last = sample_tree(st.pid)
    stable_since = time.perf_counter()
    while time.perf_counter() < end:
        time.sleep(0.25)
        cur = sample_tree(st.pid)
        if abs(cur.rss_total_kib - last.rss_total_kib) > max(1024, 0.01 * last.rss_total_kib):
            stable_since = time.perf_counter()
            last = cur
        elif time.perf_counter() - stable_since >= quiet_s:
            return cur
    return sample_tree(st.pid)


def stop(st: Started, timeout_s: float = 15.0) -> None:
    LIVE.pop(st.proc.pid, None)
    if st.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(st.proc.pid, signal.SIGTERM)
        try:
            st.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(st.proc.pid, signal.SIGKILL)
            st.proc.wait(timeout_s)
    for path in st.launch.cleanup:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def stop_all() -> None:
    for st in list(LIVE.values()):
        stop(st, timeout_s=5.0)
