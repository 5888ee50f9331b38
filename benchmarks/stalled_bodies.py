"""Deployment caveats, measured: slow login bodies against real gunicorn and waitress processes.

A client that sends a login's headers and then stalls before its body holds whatever reads
that body. This script starts each server on loopback in a subprocess, opens as many such
connections as the server serves requests at once (``POST /wx/login``, ``Content-Length:
100``, five bytes of body, then nothing), and times a ``GET /health`` sent after them
(``/health`` is public: no store, no WeChat); then the same with requests stalled inside
their headers, and with connections that send nothing at all. A last measurement sends only
the headers of a login with a ``Content-Length`` past the middleware's ``max_body_bytes`` and
times the answer: the middleware refuses it from the header alone unless the server buffers
the body first. Figures go to README.md, *Deployment*. Nothing here calls WeChat: the
stalled requests never get that far.

    python benchmarks/stalled_bodies.py            # about 10 minutes, mostly waiting
    python benchmarks/stalled_bodies.py gthread    # the servers whose name holds "gthread"

Needs gunicorn and waitress installed. Each figure is ``"<seconds> s <status>"`` from sending
the request to the first byte of its answer (``None``: none within the wait, 100 s).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
STALLED_HEAD = (
    b"POST /wx/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"cod'
)
STALLED_HEADERS = b"POST /wx/login HTTP/1.1\r\nHost: x\r\n"
HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
#: How long a probe waits for its answer, in seconds: well past gunicorn's default 30 s timeout.
PROBE_WAIT = 100.0


def app() -> Any:
    """The WSGI app the servers load (``stalled_bodies:wsgi_app``): an empty app behind the
    middleware, ``/health`` public, a memory store (one process is enough here)."""
    from wxmiddleware import MemoryStore, WxConfig, WxMiddleware

    def inner(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    config = WxConfig(
        appid="wx0000000000000000",
        secret="s" * 32,
        api_base="http://127.0.0.1:9",
        public_paths=("/health",),
    )
    return WxMiddleware(inner, config=config, store=MemoryStore())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running(argv: Sequence[str], port: int) -> Iterator[None]:
    """Run a server (``argv``) until it accepts connections on ``port``; stop it after."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)]))
    process = subprocess.Popen(
        list(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=HERE
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{argv[0]} did not start")
        time.sleep(1.0)  # let every worker boot
        yield
    finally:
        process.terminate()
        process.wait(10)


def answer_time(port: int, request: bytes, wait: float = PROBE_WAIT) -> Optional[str]:
    """``"<seconds> s <status>"`` for the answer to ``request``; ``None`` if none came."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(wait)
        sock.sendall(request)
        try:
            head = sock.recv(12)
        except (socket.timeout, ConnectionError):
            return None
    if not head:
        return None
    return f"{time.monotonic() - started:.1f} s {head[9:12].decode()}"


def stalled_probe(port: int, stalled: int, start: bytes) -> Optional[str]:
    """Open ``stalled`` requests that send ``start`` (maybe nothing) and nothing more, then
    time ``GET /health``."""
    holders = []
    try:
        for _ in range(stalled):
            sock = socket.create_connection(("127.0.0.1", port))
            if start:
                sock.sendall(start)
            holders.append(sock)
        time.sleep(0.5)  # the server has taken them up
        return answer_time(port, HEALTH)
    finally:
        for sock in holders:
            sock.close()


def oversized_probe(port: int) -> Optional[str]:
    """Send a login's headers announcing 50 MB, no body: time the answer (10 s at most)."""
    head = (
        b"POST /wx/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 50000000\r\n\r\n"
    )
    return answer_time(port, head, wait=10.0)


def servers(port: int) -> Dict[str, Tuple[List[str], int]]:
    """Each server's command line and how many requests it serves at once."""
    bind = f"127.0.0.1:{port}"
    gunicorn = [sys.executable, "-m", "gunicorn", "-b", bind, "-w", "2"]
    gthread = [*gunicorn, "-k", "gthread", "--threads", "2"]
    waitress = [sys.executable, "-m", "waitress", f"--listen={bind}", "--threads=4"]
    capped = [*waitress, "--max-request-body-size=16384"]
    return {
        "gunicorn sync -w 2": ([*gunicorn, "stalled_bodies:app()"], 2),
        "gunicorn gthread -w 2 --threads 2": ([*gthread, "stalled_bodies:app()"], 4),
        "waitress --threads=4": ([*waitress, "--call", "stalled_bodies:app"], 4),
        "waitress --threads=4 --max-request-body-size=16384": (
            [*capped, "--call", "stalled_bodies:app"],
            4,
        ),
    }


def measure(only: str = "") -> Dict[str, Dict[str, Any]]:
    """Per server whose name contains ``only``: ``/health`` alone, then after as many
    stalled bodies, stalled headers and idle connections as it serves at once, and the
    answer to a login announcing 50 MB."""
    results: Dict[str, Dict[str, Any]] = {}
    for name in (name for name in servers(0) if only in name):
        port = free_port()
        argv, capacity = servers(port)[name]
        figures: Dict[str, Any] = {"serves_at_once": capacity}
        with running(argv, port):
            figures["health_alone"] = answer_time(port, HEALTH)
            figures["health_after_stalled_bodies"] = stalled_probe(port, capacity, STALLED_HEAD)
            time.sleep(1.0)
            figures["health_after_stalled_headers"] = stalled_probe(port, capacity, STALLED_HEADERS)
            time.sleep(1.0)
            figures["health_after_idle_connections"] = stalled_probe(port, capacity, b"")
            figures["oversized_login"] = oversized_probe(port)
        results[name] = figures
        print(name, json.dumps(figures), flush=True)
    return results


if __name__ == "__main__":
    measure(sys.argv[1] if len(sys.argv) > 1 else "")
