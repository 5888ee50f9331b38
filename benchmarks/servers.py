"""Over real servers on loopback: the examples under gunicorn and uvicorn against the bare apps
and the floors (RESULTS.md, *Over real servers*, says what runs). Run alone with
``python benchmarks/run_all.py --only servers``.
"""

import asyncio
import contextlib
import functools
import tempfile
import time
from typing import Any, Dict, List, Optional

import _bench
from _bench import Request

#: Each framework's server; the apps: examples.<fw>_app:app, apps:bare_<fw>, apps:floor_<fw>()
SERVERS = {"flask": "gunicorn", "starlette": "uvicorn"}


def serve(
    stack: contextlib.ExitStack, server: str, app: str, *options: str, **env: str
) -> Dict[str, int]:
    """``server`` (gunicorn or uvicorn) serving ``app`` on a free port until ``stack`` closes:
    its port and pid. An ``app`` ending in "()" is a factory the server calls."""
    port = _bench.free_port()
    bind = ["-b", f"127.0.0.1:{port}"]
    if server == "uvicorn":
        factory = ["--factory"] if app.endswith("()") else []
        bind, app = ["--port", str(port), "--no-access-log", *factory], app.removesuffix("()")
    argv = [_bench.PYTHON, "-m", server, *options, *bind, "--log-level", "warning", app]
    return stack.enter_context(_bench.serving(argv, port, **env))


def load(info: Dict[str, int], token: Optional[str], seconds: float, connections: int) -> Any:
    """``GET /api/me`` on ``connections`` keep-alive connections for ``seconds``: requests/s,
    the p50 and p99 latency (ms) and the server's CPU time per request (µs)."""
    latencies: List[float] = []

    async def client(connection: _bench.Connection) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, _ = await connection.request(Request(token))
            if status != 200:
                raise RuntimeError(f"/api/me answered {status}")
            latencies.append(time.perf_counter() - started)

    cpu = _bench.process_tree_cpu(info["pid"])
    deadline = time.perf_counter() + seconds
    elapsed = asyncio.run(_bench.clients(connections, client, info["port"]))
    cpu = _bench.process_tree_cpu(info["pid"]) - cpu
    count, latencies = len(latencies), sorted(latencies)
    p50, p99 = latencies[count // 2], latencies[int(count * 0.99)]
    per_request = {"p50_ms": 1e3 * p50, "p99_ms": 1e3 * p99, "cpu_us": 1e6 * cpu / count}
    return {"requests": count, "rps": count / elapsed, **per_request}


async def log_in(port: int, code: str) -> str:
    connection = _bench.Connection(port)
    try:
        return _bench.token_of(*await connection.login(code))
    finally:
        await connection.close()


def measure(
    seconds: float = 3.0, rounds: int = 3, connections: int = 16, threads: int = 4
) -> Dict[str, Any]:
    """Both frameworks: bare; wrapped, and the floor, on SQLite (the default), on memory, and on
    Redis (a private server) when ``redis-server`` is installed."""
    results: Dict[str, Any] = {"load_generator": "Python asyncio driver", "rounds": rounds}
    results.update(connections=connections, seconds=seconds)
    gthread = ["-k", "gthread", "-w", "1", "--threads", str(threads)]
    for framework, server in SERVERS.items():
        options = gthread if server == "gunicorn" else []
        with contextlib.ExitStack() as stack:
            fake = stack.enter_context(_bench.FakeWeChatProcess())
            state = stack.enter_context(tempfile.TemporaryDirectory())
            redis_url = stack.enter_context(_bench.private_redis())
            # Each variant on SQLite has a file of its own; the bare app never opens its store.
            urls = {"sqlite": f"sqlite:///{state}/{{}}.sqlite3", "memory": "memory://"}
            urls.update({"redis": redis_url} if redis_url else {})
            served = {"bare": (f"apps:bare_{framework}", "memory://")}
            for store, url in urls.items():
                served[store] = f"examples.{framework}_app:app", url
                served[f"floor_{store}"] = f"apps:floor_{framework}()", url
            variants = {}
            for variant, (app, url) in served.items():
                env = {**fake.env(), "WX_SESSION_STORE": url.format(variant)}
                info = serve(stack, server, app, *options, **env)
                token = _bench.FLOOR_TOKEN if variant.startswith("floor") else None
                if variant in urls:  # the middleware's own session, from a login
                    token = asyncio.run(log_in(info["port"], fake.codes(1)[0]))
                variants[variant] = functools.partial(load, info, token, seconds, connections)
            runs = _bench.interleaved(variants, rounds)
        results[framework] = summary = {"server": " ".join([server, *options])}
        for variant, items in runs.items():
            summary[variant] = _bench.medians(items)
            summary[variant]["ratio_vs_bare"] = _bench.ratio(runs, variant, "bare", "rps")
            summary[variant]["cpu_ratio_vs_bare"] = _bench.ratio(runs, "bare", variant, "cpu_us")
    return results
