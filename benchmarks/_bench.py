"""Helpers shared by the benchmark scripts (not a benchmark itself).

- :func:`machine` describes where the numbers come from;
- :func:`alternate` times several variants in alternating rounds and keeps every round, so
  that ratios are taken within a round and their median is robust to background load;
- :class:`PrivateRedis` starts a ``redis-server`` of our own on a free loopback port;
- :class:`FakeWeChatProcess` runs the fake WeChat in a process of its own and hands out codes;
- :func:`http_request` is a minimal keep-alive HTTP/1.1 client over asyncio streams, cheap
  enough in CPU that a driver in Python does not hide the server's cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable


def ensure_importable() -> None:
    """Put the project root (``wxmiddleware``, ``examples``) and ``benchmarks/`` on the path."""
    for path in (str(ROOT), str(BENCH)):
        if path not in sys.path:
            sys.path.insert(0, path)


ensure_importable()


# --- where the numbers come from ---------------------------------------------------------


def _version(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def redis_server_version(binary: Optional[str] = None) -> str:
    binary = binary or shutil.which("redis-server")
    if binary is None:
        return "not installed"
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    for word in out.split():
        if word.startswith("v="):
            return word[2:]
    return out.strip() or "unknown"


def wrk_version() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        return "not installed"
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].split(" [")[0].replace("wrk ", "") if text else "unknown"


def machine() -> Dict[str, str]:
    """Cores, CPU, Python and the versions that matter for these numbers."""
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "wxmiddleware": _version("wxmiddleware"),
        "Flask": _version("flask"),
        "Werkzeug": _version("werkzeug"),
        "Starlette": _version("starlette"),
        "redis-py": _version("redis"),
        "Redis server": redis_server_version(),
        "httpx": _version("httpx"),
        "httpcore": _version("httpcore"),
        "Flask-Session": _version("flask-session"),
        "gunicorn": _version("gunicorn"),
        "uvicorn": _version("uvicorn"),
        "wrk": wrk_version(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# --- timing ------------------------------------------------------------------------------


def alternate(
    variants: Dict[str, Callable[[int], float]],
    n: int,
    rounds: int,
    warmup: int = 1,
) -> Dict[str, List[float]]:
    """Time each variant ``rounds`` times, interleaved; return seconds per call, per round.

    ``variants[name](n)`` runs ``n`` calls and returns the seconds they took. Each round
    runs every variant once, in an order rotated from round to round, so that a burst of
    background load hits all of them alike. The garbage collector runs between variants,
    never inside a timed block it did not cause.
    """
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name](max(1, n // 4))
    times: Dict[str, List[float]] = {name: [] for name in names}
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            times[name].append(variants[name](n) / n)
    return times


def ratio(times: Dict[str, List[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of ``numerator``'s throughput over ``denominator``'s, round by round."""
    return statistics.median(d / u for u, d in zip(times[numerator], times[denominator]))


def cost(times: Dict[str, List[float]], variant: str, bare: str) -> float:
    """Median over rounds of the time ``variant`` adds to ``bare``, in seconds per call."""
    return statistics.median(v - b for v, b in zip(times[variant], times[bare]))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# --- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, timeout: float = 20.0, process: Optional[subprocess.Popen] = None
) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def stop(process: Optional[subprocess.Popen], timeout: float = 10.0) -> None:  # type: ignore[type-arg]
    """Stop a process we started, by its own handle (TERM, then KILL)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: Dict[int, int] = {}
    used: Dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
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

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        self.port = 0
        self.process: Optional[subprocess.Popen] = None  # type: ignore[type-arg]

    @property
    def available(self) -> bool:
        return self.binary is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> PrivateRedis:
        if self.binary is None:
            raise RuntimeError("redis-server is not on PATH")
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.process)
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.process)

    def commandstats(self, client: Any) -> Dict[str, int]:
        """``{command: calls}`` from ``INFO commandstats``."""
        info = client.info("commandstats")
        return {
            name.replace("cmdstat_", ""): int(value["calls"])
            for name, value in info.items()
            if name.startswith("cmdstat_")
        }


def command_delta(before: Dict[str, int], after: Dict[str, int]) -> Dict[str, int]:
    """Commands run between two ``commandstats`` snapshots (the ``INFO`` itself excluded)."""
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    delta["info"] = delta.get("info", 0) - 1
    return {name: count for name, count in sorted(delta.items()) if count > 0}


_FAKE_SCRIPT = r"""
import json, sys
from wxmiddleware.testing import FakeWeChat
fake = FakeWeChat(latency=float(sys.argv[1]))
fake.start()
print(json.dumps({"url": fake.url, "appid": fake.appid, "secret": fake.secret}), flush=True)
batch = 0
for line in sys.stdin:
    count = int(line)
    batch += 1
    # One user per code: the fake allows 100 logins per user and minute.
    codes = [fake.issue_code(f"bench-{batch}-{n}") for n in range(count)]
    print(json.dumps(codes), flush=True)
fake.stop()
"""


class FakeWeChatProcess:
    """The fake WeChat (``wxmiddleware.testing.FakeWeChat``) in a process of its own.

    Its threads then never compete with the measured process for the GIL. ``codes(n)`` asks
    it for ``n`` fresh codes, each for a user of its own.
    """

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.process: Optional[subprocess.Popen] = None  # type: ignore[type-arg]
        self.url = self.appid = self.secret = ""

    def __enter__(self) -> FakeWeChatProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [PYTHON, "-c", _FAKE_SCRIPT, str(self.latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(ROOT),
        )
        assert self.process.stdout is not None
        first = json.loads(self.process.stdout.readline())
        self.url, self.appid, self.secret = first["url"], first["appid"], first["secret"]
        return self

    def codes(self, count: int) -> List[str]:
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()
        codes: List[str] = json.loads(self.process.stdout.readline())
        return codes

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                stop(self.process)


def bench_prefix() -> str:
    """A Redis key prefix no one else uses."""
    return f"wxbench-{secrets.token_hex(4)}:"


def delete_prefixed(client: Any, prefix: str) -> None:
    """Delete our own keys only (never a flush)."""
    for key in list(client.scan_iter(match=prefix + "*", count=1000)):
        client.delete(key)


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
    import logging

    logger = logging.getLogger("wxmiddleware")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# --- a tiny HTTP/1.1 client for drivers in Python ---------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection over asyncio streams (no TLS, no chunked bodies)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None

    async def request(
        self, method: str, path: str, headers: Sequence[Tuple[str, str]] = (), body: bytes = b""
    ) -> Tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None and self.writer is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{name}: {value}" for name, value in headers]
        head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        status_line = await self.reader.readline()
        if not status_line:
            await self.close()
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        close = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            lowered = name.strip().lower()
            if lowered == "content-length":
                length = int(value.strip())
            elif lowered == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()
        self.reader = self.writer = None
