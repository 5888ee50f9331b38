"""Helpers shared by the benchmarks (not a benchmark itself): paths, timing, processes,
requests built as a server would, and a tiny keep-alive HTTP/1.1 client.

The package is imported from wherever Python finds it first (``PYTHONPATH`` wins, so
``PYTHONPATH=/path/to/other/checkout`` benchmarks that checkout); the repository root is only
a fallback. Processes started here get the same package on their ``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

import wxmiddleware  # noqa: E402

#: The checkout the package was imported from (given to every process started here).
PACKAGE_ROOT = Path(wxmiddleware.__file__).resolve().parent.parent
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
UNIONID = "o6_bmasdasdsad6_2sgVt7hMZOPfL"
#: The token header as a mini-program sends it (the hyphen form reaches every server).
TOKEN_HEADER = "3rd-session"
#: The appid in the Referer of :func:`miniprogram_headers` (a single-app setup never reads it).
BENCH_APPID = "wx0123456789abcdef"


def miniprogram_headers(token: Optional[str] = None) -> List[Tuple[str, str]]:
    """The headers of a ``wx.request`` as an app behind nginx receives them, in nginx's
    order (its ``proxy_set_header`` lines first, then the client's), the token last when
    given. Every benchmark sends these: the middleware's cost grows with what it scans."""
    user_agent = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
        " (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI"
        f" Language/zh_CN miniProgram/{BENCH_APPID}"
    )
    headers = [
        ("Host", "api.example.com"), ("X-Real-IP", "203.0.113.7"),
        ("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https"),
        ("Connection", "keep-alive"), ("Content-Type", "application/json"),
        ("User-Agent", user_agent),
        ("Referer", f"https://servicewechat.com/{BENCH_APPID}/12/page-frame.html"),
        ("Accept", "*/*"), ("Accept-Encoding", "gzip,compress,br,deflate"),
        ("Accept-Language", "zh-CN,zh;q=0.9"),
    ]
    return headers + ([(TOKEN_HEADER, token)] if token is not None else [])


def child_env(**extra: str) -> Dict[str, str]:
    """The environment of a process started here (run it with ``cwd=PACKAGE_ROOT``)."""
    path = os.pathsep.join(dict.fromkeys([str(PACKAGE_ROOT), str(BENCH), str(ROOT)]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def machine() -> Dict[str, str]:
    """Cores, CPU, Python and the versions that matter for these numbers."""
    from importlib import metadata

    def version(command: List[str]) -> str:  # the first line a tool prints about itself
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
            return ((out.stdout + out.stderr).strip().splitlines() or ["unknown"])[0]
        return "not installed"

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    redis_words = version(["redis-server", "--version"]).split()
    info = {
        "cores": str(os.cpu_count()), "cpu": cpu, "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "wxmiddleware": f"{getattr(wxmiddleware, '__version__', '?')} ({PACKAGE_ROOT})",
    }
    for name in ("Flask", "Werkzeug", "Starlette", "redis", "httpx", "Flask-Session", "gunicorn",
                 "uvicorn"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            info[name] = metadata.version(name.lower())
    info["Redis server"] = next((w[2:] for w in redis_words if w.startswith("v=")), "?")
    info["wrk"] = version(["wrk", "--version"]).split(" [")[0].replace("wrk ", "")
    info["load average at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return info


def rotated(names: Sequence[str], rounds: int) -> Iterator[str]:
    """Every name once per round, in an order rotated from round to round, so that a burst of
    background load hits all of them alike."""
    for number in range(rounds):
        shift = number % len(names)
        yield from [*names[shift:], *names[:shift]]


def alternate(
    variants: Dict[str, Callable[[int], float]], n: int, rounds: int
) -> Dict[str, List[float]]:
    """Seconds per call of each variant, per round (rounds interleaved, see :func:`rotated`).

    ``variants[name](n)`` runs ``n`` calls and returns the seconds they took. The garbage
    collector runs between variants.
    """
    for run in variants.values():  # warm up
        run(max(1, n // 4))
    times: Dict[str, List[float]] = {name: [] for name in variants}
    for name in rotated(list(variants), rounds):
        gc.collect()
        times[name].append(variants[name](n) / n)
    return times


def ratio(times: Dict[str, List[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of ``numerator``'s throughput over ``denominator``'s, round by round."""
    return statistics.median(d / u for u, d in zip(times[numerator], times[denominator]))


def cost(times: Dict[str, List[float]], variant: str, bare: str) -> float:
    """Median over rounds of the time ``variant`` adds to ``bare``, in seconds per call."""
    return statistics.median(v - b for v, b in zip(times[variant], times[bare]))


median = statistics.median


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: Optional[subprocess.Popen] = None) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after 20 s")


def stop(process: Optional[subprocess.Popen]) -> None:  # type: ignore[type-arg]
    """Stop a process we started, by its own handle (TERM, then KILL)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: Dict[int, int] = {}
    used: Dict[int, float] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += used.get(current, 0.0)
        todo += [child for child, parent in parents.items() if parent == current]
    return total


class PrivateRedis:
    """A ``redis-server`` of our own on a free loopback port, no persistence; stopped on exit."""

    available = shutil.which("redis-server") is not None

    def __enter__(self) -> PrivateRedis:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.process)


_FAKE_SCRIPT = r"""
import json, sys
from wxmiddleware.testing import FakeWeChat
fake = FakeWeChat(latency=float(sys.argv[1])).start()
print(json.dumps({"url": fake.url, "appid": fake.appid, "secret": fake.secret}), flush=True)
for batch, line in enumerate(sys.stdin):
    # One user per code: the fake allows 100 logins per user and minute.
    print(json.dumps([fake.issue_code(f"b{batch}-{n}") for n in range(int(line))]), flush=True)
fake.stop()
"""


class FakeWeChatProcess:
    """``wxmiddleware.testing.FakeWeChat`` in a process of its own (its threads then never
    compete with the measured process for the GIL); ``codes(n)`` gives n fresh codes."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency

    def __enter__(self) -> FakeWeChatProcess:
        self.process = subprocess.Popen(
            [PYTHON, "-c", _FAKE_SCRIPT, str(self.latency)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=child_env(), cwd=PACKAGE_ROOT,
        )
        assert self.process.stdout is not None
        first = json.loads(self.process.stdout.readline())
        self.url, self.appid, self.secret = first["url"], first["appid"], first["secret"]
        return self

    def config(self, **options: Any) -> Any:
        return wxmiddleware.WxConfig(
            appid=self.appid, secret=self.secret, api_base=self.url, **options
        )

    def codes(self, count: int) -> List[str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()
        codes: List[str] = json.loads(self.process.stdout.readline())
        return codes

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            stop(self.process)


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
    logger = logging.getLogger("wxmiddleware")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


async def aclose(closable: Any) -> None:
    """Close an async store or client: ``aclose()`` where it exists, else ``close()``."""
    close = getattr(closable, "aclose", None) or closable.close
    result = close()
    if asyncio.iscoroutine(result):
        await result


def _request_headers(
    headers: Sequence[Tuple[str, str]], token: Optional[str], body: bytes
) -> List[Tuple[str, str]]:
    framing = [("Content-Length", str(len(body)))] if body else []
    return [*miniprogram_headers(token), *framing, *headers]


def environ(
    token: Optional[str] = None, method: str = "GET", path: str = "/api/me", body: bytes = b"",
    headers: Sequence[Tuple[str, str]] = (),
) -> Dict[str, Any]:
    """A WSGI environ as gunicorn builds it for a mini-program's request
    (:func:`miniprogram_headers`, then ``headers``)."""
    env: Dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "RAW_URI": path, "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    for name, value in _request_headers(headers, token, body):
        key = name.upper().replace("-", "_")
        env[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    return env


def scope(
    token: Optional[str] = None, method: str = "GET", path: str = "/api/me", body: bytes = b"",
    headers: Sequence[Tuple[str, str]] = (),
) -> Dict[str, Any]:
    """An ASGI HTTP scope as uvicorn builds it for a mini-program's request."""
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "root_path": "", "query_string": b"",
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in _request_headers(headers, token, body)
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


def call_wsgi(app: Any, env: Dict[str, Any]) -> Tuple[int, bytes]:
    status: List[str] = []
    result = app(env, lambda line, headers, exc_info=None: status.append(line))
    body = b"".join(result)
    getattr(result, "close", lambda: None)()
    return int(status[0].split()[0]), body


async def call_asgi(app: Any, asgi_scope: Dict[str, Any], body: bytes = b"") -> Tuple[int, bytes]:
    sent = False

    async def receive() -> Dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # a client that stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status, chunks = 0, []

    async def send(message: Dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            chunks.append(message.get("body", b""))

    await app(asgi_scope, receive, send)
    return status, b"".join(chunks)


def login_body(code: str) -> bytes:
    return json.dumps({"code": code}).encode()


def token_of(status: int, body: bytes) -> str:
    if status != 200:
        raise RuntimeError(f"login answered {status}: {body[:200]!r}")
    token: str = json.loads(body)["3rd_session"]
    return token


def wsgi_login(app: Any, code: str) -> str:
    """Log in through a wrapped WSGI app; return the token."""
    return token_of(*call_wsgi(app, environ(None, "POST", "/wx/login", login_body(code))))


async def asgi_login(app: Any, code: str) -> str:
    body = login_body(code)
    return token_of(*await call_asgi(app, scope(None, "POST", "/wx/login", body), body))


class Connection:
    """One keep-alive HTTP/1.1 connection over asyncio streams (no TLS, no chunked bodies)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None

    async def request(
        self, method: str, path: str, headers: Sequence[Tuple[str, str]] = (), body: bytes = b""
    ) -> Tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = [f"{method} {path} HTTP/1.1"]
        if not any(name.lower() == "host" for name, _ in headers):
            head.append(f"Host: 127.0.0.1:{self.port}")
        head += [f"{name}: {value}" for name, value in headers]
        if body or method != "GET":
            head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        status_line = await self.reader.readline()
        if not status_line:
            await self.close()
            raise ConnectionError("the server closed the connection")
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            length = int(value) if name == "content-length" else length
            close = close or (name == "connection" and value == "close")
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return int(status_line.split()[1]), payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def clients(port: int, count: int, work: Callable[[Connection], Awaitable[None]]) -> float:
    """Run ``work`` in ``count`` concurrent clients, each on a connection of its own; seconds."""

    async def client() -> None:
        connection = Connection(port)
        try:
            await work(connection)
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(count)))
    return time.perf_counter() - started


async def post_login(port: int, code: str) -> Tuple[int, bytes]:
    connection = Connection(port)
    try:
        headers = miniprogram_headers()
        return await connection.request("POST", "/wx/login", headers, login_body(code))
    finally:
        await connection.close()
