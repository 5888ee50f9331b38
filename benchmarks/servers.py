"""Over real servers on loopback: the examples under gunicorn and uvicorn against the bare apps
(RESULTS.md, *Over real servers*, says what runs). Run alone with
``python benchmarks/run_all.py --only servers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import tempfile
import time
from typing import Any, Dict, List, Optional

import _bench
from _bench import Request

APPS = {  # server, wrapped app, bare app
    "flask": ("gunicorn", "examples.flask_app:app", "apps:bare_flask"),
    "starlette": ("uvicorn", "examples.starlette_app:app", "apps:bare_starlette"),
}


def command(server: str, port: int, app: str, *options: str) -> List[str]:
    """The command line of ``server`` (gunicorn or uvicorn) serving ``app`` on ``port``."""
    bind = ["-b", f"127.0.0.1:{port}"]
    if server == "uvicorn":
        bind = ["--port", str(port), "--no-access-log"]
    return [_bench.PYTHON, "-m", server, *options, *bind, "--log-level", "warning", app]


async def load(port: int, token: Optional[str], seconds: float, connections: int) -> Dict[str, Any]:
    """``GET /api/me`` on ``connections`` keep-alive connections for ``seconds``: requests/s
    and the p50 and p99 latency (ms)."""
    latencies: List[float] = []
    deadline = time.perf_counter() + seconds

    async def client(connection: _bench.Connection) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, _ = await connection.request(Request(token))
            if status != 200:
                raise RuntimeError(f"/api/me answered {status}")
            latencies.append(time.perf_counter() - started)

    elapsed = await _bench.clients(connections, client, port)
    count, latencies = len(latencies), sorted(latencies)
    p50, p99 = latencies[count // 2], latencies[int(count * 0.99)]
    return {"requests": count, "rps": count / elapsed, "p50_ms": 1e3 * p50, "p99_ms": 1e3 * p99}


def load_round(info: Dict[str, Any], token: Optional[str], *load_args: Any) -> Dict[str, Any]:
    """:func:`load` on a server, and the server's CPU time per request (µs)."""
    cpu = _bench.process_tree_cpu(info["pid"])
    item = asyncio.run(load(info["port"], token, *load_args))
    cpu = _bench.process_tree_cpu(info["pid"]) - cpu
    return {**item, "cpu_us": 1e6 * cpu / item["requests"]}


async def log_in(port: int, code: str) -> str:
    connection = _bench.Connection(port)
    try:
        return _bench.token_of(*await connection.login(code))
    finally:
        await connection.close()


def measure(
    seconds: float = 3.0, rounds: int = 3, connections: int = 16, threads: int = 4
) -> Dict[str, Any]:
    """Both frameworks: bare, wrapped on SQLite (the default), on memory, and on Redis (a
    private server) when ``redis-server`` is installed."""
    results: Dict[str, Any] = {"load_generator": "Python asyncio driver", "rounds": rounds}
    results.update(connections=connections, seconds=seconds)
    gthread = ["-k", "gthread", "-w", "1", "--threads", str(threads), "--backlog", "2048"]
    for framework, (server, wrapped, bare) in APPS.items():
        with contextlib.ExitStack() as stack:
            fake = stack.enter_context(_bench.FakeWeChatProcess())
            state = stack.enter_context(tempfile.TemporaryDirectory())
            # The bare app keeps no sessions: its store is never opened.
            stores = {"bare": "memory://", "sqlite": f"sqlite:///{state}/wx.sqlite3"}
            stores["memory"] = "memory://"
            redis_url = stack.enter_context(_bench.private_redis())
            stores.update({"redis": redis_url} if redis_url else {})
            variants = {}
            for variant, store in stores.items():
                port, app = _bench.free_port(), bare if variant == "bare" else wrapped
                argv = command(server, port, app, *(gthread if server == "gunicorn" else []))
                env = {**fake.env(), "WX_SESSION_STORE": store}
                info = stack.enter_context(_bench.serving(argv, port, **env))
                token = None if variant == "bare" else asyncio.run(log_in(port, fake.codes(1)[0]))
                variants[variant] = functools.partial(load_round, info, token, seconds, connections)
            runs = _bench.interleaved(variants, rounds)
        results[framework] = summary = {"server": "uvicorn"}
        if server == "gunicorn":
            summary["server"] = f"gunicorn -k gthread -w 1 --threads {threads}"
        for variant, items in runs.items():
            summary[variant] = _bench.medians(items)
            summary[variant]["ratio_vs_bare"] = _bench.ratio(runs, variant, "bare", "rps")
            summary[variant]["cpu_ratio_vs_bare"] = _bench.ratio(runs, "bare", variant, "cpu_us")
    return results
