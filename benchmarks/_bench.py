"""What the benchmarks share: the measuring loop, requests as servers build them, processes
(servers, Redis, the fake WeChat) and a keep-alive HTTP/1.1 client. The package comes from
wherever Python finds it first (``PYTHONPATH=/other/checkout`` benchmarks that checkout; the
repository root is the fallback), in the processes started here too.
"""

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
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable
if str(BENCH.parent) not in sys.path:
    sys.path.append(str(BENCH.parent))

import wxmiddleware  # noqa: E402

#: The checkout the package was imported from (given to every process started here).
PACKAGE_ROOT = Path(wxmiddleware.__file__).resolve().parent.parent
OPENID, UNIONID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "o6_bmasdasdsad6_2sgVt7hMZOPfL"
#: The token header as a mini-program sends it (the hyphen form reaches every server).
TOKEN_HEADER = "3rd-session"
FLOOR_TOKEN = "floor-token-" + "F" * 31  # a served floor's one session; as long as our tokens
#: The appid in the Referer of :func:`miniprogram_headers` (a single-app setup never reads it).
BENCH_APPID = "wx0123456789abcdef"
median = statistics.median
# Benchmarks provoke the middleware's warnings on purpose (a database another process locks).
logging.getLogger("wxmiddleware").setLevel(logging.ERROR)


def miniprogram_headers(token: Optional[str] = None) -> List[Tuple[str, str]]:
    """The headers of a ``wx.request`` as an app behind nginx receives them, in nginx's
    order (its ``proxy_set_header`` lines first, then the client's), the token last when
    given. Every benchmark sends these: the middleware's cost grows with what it scans."""
    agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
    agent += " (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI"
    headers = [
        ("Host", "api.example.com"),
        ("X-Real-IP", "203.0.113.7"),
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Proto", "https"),
        ("Connection", "keep-alive"),
        ("Content-Type", "application/json"),
        ("User-Agent", f"{agent} Language/zh_CN miniProgram/{BENCH_APPID}"),
        ("Referer", f"https://servicewechat.com/{BENCH_APPID}/12/page-frame.html"),
        ("Accept", "*/*"),
        ("Accept-Encoding", "gzip,compress,br,deflate"),
        ("Accept-Language", "zh-CN,zh;q=0.9"),
    ]
    return headers + ([(TOKEN_HEADER, token)] if token is not None else [])


def machine() -> Dict[str, str]:
    """Cores, CPU, Python and the versions that matter for these numbers."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    info = {"cores": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version()}
    info["os"] = f"{platform.system()} {platform.release()}"
    info["wxmiddleware"] = f"{getattr(wxmiddleware, '__version__', '?')} ({PACKAGE_ROOT})"
    packages = ["Flask", "Werkzeug", "Starlette", "redis", "aiohttp", "httpx", "Flask-Session"]
    for name in [*packages, "Django", "gunicorn", "uvicorn"]:
        with contextlib.suppress(metadata.PackageNotFoundError):
            info[name] = metadata.version(name.lower())
    with contextlib.suppress(OSError, IndexError):  # "Redis server v=7.0.15 sha=..."
        redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
        info["Redis server"] = redis.stdout.split("v=")[1].split()[0]
    info["load average at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return info


# --- the measuring loop ---
def interleaved(variants: Dict[Any, Callable[[], Any]], rounds: int) -> Dict[Any, List[Any]]:
    """What each variant returns, per round. Each variant runs once to warm up, then once a
    round in an order rotated from round to round, so that a burst of background load hits
    all of them alike; the garbage collector runs before each."""
    for run in variants.values():
        run()
    runs: Dict[Any, List[Any]] = {name: [] for name in variants}
    order = list(variants)
    for number in range(rounds):
        for name in order[number % len(order) :] + order[: number % len(order)]:
            gc.collect()
            runs[name].append(variants[name]())
    return runs


def ratio(runs: Dict[Any, List[Any]], top: Any, bottom: Any, key: Optional[str] = None) -> float:
    """Median over rounds of ``top``'s figure (its ``key``) over ``bottom``'s, round by round."""
    pairs = zip(runs[top], runs[bottom])
    return median(t / b if key is None else t[key] / b[key] for t, b in pairs)


def medians(items: Sequence[Dict[str, float]]) -> Dict[str, float]:
    """The median of each figure over rounds."""
    return {key: median(item[key] for item in items) for key in items[0]}


# --- requests, in process ---
class Request(NamedTuple):
    """A mini-program's request: :func:`miniprogram_headers` (with the token), then ``headers``."""

    token: Optional[str] = None
    method: str = "GET"
    path: str = "/api/me"
    body: bytes = b""
    headers: Sequence[Tuple[str, str]] = ()

    @classmethod
    def login(cls, code: str) -> "Request":
        return cls(None, "POST", "/wx/login", json.dumps({"code": code}).encode())

    def all_headers(self) -> List[Tuple[str, str]]:
        framing = [("Content-Length", str(len(self.body)))] if self.body else []
        return [*miniprogram_headers(self.token), *framing, *self.headers]

    def environ(self) -> Dict[str, Any]:
        """A WSGI environ as gunicorn builds it."""
        env: Dict[str, Any] = {"REQUEST_METHOD": self.method, "SCRIPT_NAME": "", "QUERY_STRING": ""}
        env.update(PATH_INFO=self.path, RAW_URI=self.path, REMOTE_ADDR="127.0.0.1")
        env.update(SERVER_NAME="127.0.0.1", SERVER_PORT="8000", SERVER_PROTOCOL="HTTP/1.1")
        env.update({"wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.run_once": False})
        env.update({"wsgi.multithread": True, "wsgi.multiprocess": False})
        env.update({"wsgi.input": io.BytesIO(self.body), "wsgi.errors": io.StringIO()})
        for name, value in self.all_headers():
            key = name.upper().replace("-", "_")
            env[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
        return env

    def scope(self) -> Dict[str, Any]:
        """An ASGI HTTP scope as uvicorn builds it."""
        pairs = [(name.lower(), value) for name, value in self.all_headers()]
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]
        asgi = {"version": "3.0", "spec_version": "2.3"}
        scope = {"type": "http", "asgi": asgi, "http_version": "1.1", "method": self.method}
        scope.update(scheme="http", path=self.path, raw_path=self.path.encode(), root_path="")
        scope.update(query_string=b"", headers=headers, state={})
        scope.update(client=("127.0.0.1", 50000), server=("127.0.0.1", 8000))
        return scope

    def answer(self, app: Any, loop: Optional[asyncio.AbstractEventLoop]) -> Tuple[int, bytes]:
        """``app``'s answer: a WSGI app's, or, given the ``loop`` to run it in, an ASGI app's."""
        return self.to_wsgi(app) if loop is None else loop.run_until_complete(self.to_asgi(app))

    def to_wsgi(self, app: Any) -> Tuple[int, bytes]:
        """The status and body of ``app``'s answer."""
        status: List[str] = []
        result = app(self.environ(), lambda line, headers, exc_info=None: status.append(line))
        body = b"".join(result)
        getattr(result, "close", lambda: None)()
        return int(status[0].split()[0]), body

    async def to_asgi(self, app: Any) -> Tuple[int, bytes]:
        """The status and body of ``app``'s answer, the client staying connected after it."""
        messages = [{"type": "http.request", "body": self.body, "more_body": False}]
        answer: Dict[str, Any] = {"status": 0, "body": b""}

        async def receive() -> Dict[str, Any]:
            if not messages:
                await asyncio.Event().wait()  # a client that stays connected
            return messages.pop()

        async def send(message: Dict[str, Any]) -> None:
            answer["status"] = message.get("status", answer["status"])
            answer["body"] += message.get("body", b"")

        await app(self.scope(), receive, send)
        return answer["status"], answer["body"]


def token_of(status: int, body: bytes) -> str:
    if status != 200:
        raise RuntimeError(f"login answered {status}: {body[:200]!r}")
    return str(json.loads(body)["3rd_session"])


async def aclose(closable: Any) -> None:
    """Close an async store or client: ``aclose()`` where it exists, else ``close()``."""
    result = (getattr(closable, "aclose", None) or closable.close)()
    if asyncio.iscoroutine(result):
        await result


# --- processes ---
def child_env(**extra: str) -> Dict[str, str]:
    """The environment of a process started here (run it with ``cwd=PACKAGE_ROOT``)."""
    path = os.pathsep.join(dict.fromkeys(map(str, [PACKAGE_ROOT, BENCH, BENCH.parent])))
    return {**os.environ, "PYTHONPATH": path, **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen) -> None:  # type: ignore[type-arg]  # by its own handle
    process.terminate()
    process.wait(10)


@contextlib.contextmanager
def serving(command: List[str], port: int, **env: str) -> Iterator[Dict[str, int]]:
    """Run a server (its stderr ours) until it listens on ``port``; yield its port and pid."""
    env = child_env(**env)
    process = subprocess.Popen(command, env=env, cwd=PACKAGE_ROOT, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[:3]} exited or does not listen on {port}")
            time.sleep(0.05)
        yield {"port": port, "pid": process.pid}
    finally:
        stop(process)


@contextlib.contextmanager
def private_redis(wanted: bool = True) -> Iterator[Optional[str]]:
    """The URL of a ``redis-server`` of our own (a free loopback port, no persistence); None
    when not ``wanted`` or not installed."""
    if not wanted or shutil.which("redis-server") is None:
        yield None
        return
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    with serving([*command, "--appendonly", "no"], port):
        yield f"redis://127.0.0.1:{port}/0"


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants."""
    import psutil

    process, total = psutil.Process(pid), 0.0
    for each in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):  # one that ended meanwhile
            total += sum(each.cpu_times()[:2])
    return total


_FAKE_SCRIPT = r"""import json, sys
from wxmiddleware.testing import FakeWeChat
fake = FakeWeChat(latency=float(sys.argv[1])).start()
print(json.dumps({"url": fake.url, "appid": fake.appid, "secret": fake.secret}), flush=True)
for batch, line in enumerate(sys.stdin):
    # One user per code: the fake allows 100 logins per user and minute.
    print(json.dumps([fake.issue_code(f"b{batch}-{n}") for n in range(int(line))]), flush=True)
"""


class FakeWeChatProcess:
    """``wxmiddleware.testing.FakeWeChat`` in a process of its own (its threads then never
    compete with the measured process for the GIL); ``codes(n)`` gives n fresh codes."""

    def __init__(self, latency: float = 0.0) -> None:
        command = [PYTHON, "-c", _FAKE_SCRIPT, str(latency)]
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
        self.process = subprocess.Popen(command, env=child_env(), cwd=PACKAGE_ROOT, **pipes)
        first = json.loads(self.process.stdout.readline())  # type: ignore[union-attr]
        self.url, self.appid, self.secret = first["url"], first["appid"], first["secret"]

    def __enter__(self) -> "FakeWeChatProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.process)

    def config(self, package: Any = wxmiddleware, **options: Any) -> Any:
        """A ``WxConfig`` (of ``package``: another checkout's, renamed) that logs in here."""
        return package.WxConfig(appid=self.appid, secret=self.secret, api_base=self.url, **options)

    def env(self) -> Dict[str, str]:
        """The environment that makes ``WxConfig.from_env()`` log in here."""
        return {"WX_APPID": self.appid, "WX_SECRET": self.secret, "WX_API_BASE": self.url}

    def codes(self, count: int) -> List[str]:
        self.process.stdin.write(f"{count}\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return list(json.loads(self.process.stdout.readline()))  # type: ignore[union-attr]


# --- a client over loopback ---
class Connection:
    """A keep-alive HTTP/1.1 connection (asyncio streams; no TLS, no chunked bodies)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: Optional[Tuple[asyncio.StreamReader, asyncio.StreamWriter]] = None

    async def request(self, request: Request) -> Tuple[int, bytes]:
        """Send ``request`` and read the answer."""
        if self.streams is None or self.streams[1].is_closing():
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        head = [f"{request.method} {request.path} HTTP/1.1"]
        head += [f"{name}: {value}" for name, value in request.all_headers()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body)
        status_line = await reader.readline()
        if not status_line:
            await self.close()
            raise ConnectionError("the server closed the connection")
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            length = int(value) if name == "content-length" else length
            close = close or (name == "connection" and value == "close")
        payload = await reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return int(status_line.split()[1]), payload

    async def login(self, code: str) -> Tuple[int, bytes]:
        return await self.request(Request.login(code))

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.streams[1].wait_closed()
        self.streams = None


async def clients(count: int, work: Callable[[Connection], Any], port: int = 0) -> float:
    """``work`` in ``count`` concurrent clients, each on its own connection to ``port``: seconds."""

    async def client() -> None:
        connection = Connection(port)
        try:
            await work(connection)
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(count)))
    return time.perf_counter() - started


async def log_in_all(
    codes: List[str], concurrency: int, login: Callable[[Connection, str], Any], port: int = 0
) -> Tuple[float, List[str]]:
    """``concurrency`` clients log in with ``codes``, each taking the next code once its
    last login is answered. Returns the successful logins per second and the failures."""
    pending, failures = list(codes), []

    async def work(connection: Connection) -> None:
        while pending:
            status, body = await login(connection, pending.pop())
            if status != 200:
                failures.append(f"{status} {body[:120]!r}")

    seconds = await clients(concurrency, work, port)
    return (len(codes) - len(failures)) / seconds, failures
