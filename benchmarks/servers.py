"""Over real servers: the examples under gunicorn and uvicorn, wrapped vs bare, on loopback.

``measure_requests``: an authenticated ``GET /api/me`` under load (``wrk``, or a Python
driver), bare / SQLite / memory; ``measure_wsgi_logins``: 100 concurrent logins through
gunicorn gthread against the fake WeChat at 100 ms (RESULTS.md, *Over real servers*,
*Login throughput*). Run: ``python benchmarks/servers.py [--seconds 3] [--skip-logins]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any, Dict, Iterator, List, Optional

import _bench
import report

WRK_SCRIPT = """done = function(s, latency, requests)
  io.write(string.format('WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, '
    .. '"p99_us": %d, "errors": %d}\\n', s.requests, s.duration, latency:percentile(50),
    latency:percentile(99), s.errors.connect + s.errors.read + s.errors.write
    + s.errors.timeout + s.errors.status))
end
"""
APPS = {  # server, wrapped app, bare app
    "flask": ("gunicorn", "examples.flask_app:app", "bare_apps:flask_app"),
    "starlette": ("uvicorn", "examples.starlette_app:app", "bare_apps:starlette_app"),
}


@contextlib.contextmanager
def server(
    kind: str, app: str, fake: _bench.FakeWeChatProcess, state: str, store: Optional[str] = None,
    workers: int = 1, threads: int = 4,
) -> Iterator[Dict[str, Any]]:
    """Start gunicorn (gthread) or uvicorn on a free port; yield its port, pid and errors."""
    port = _bench.free_port()
    command = [os.path.join(os.path.dirname(_bench.PYTHON), kind), "--log-level", "warning"]
    if kind == "gunicorn":
        command += ["-k", "gthread", "-w", str(workers), "--threads", str(threads)]
        command += ["-b", f"127.0.0.1:{port}", "--backlog", "2048", app]
    else:
        command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", app]
    env = _bench.child_env(
        WX_APPID=fake.appid, WX_SECRET=fake.secret, WX_API_BASE=fake.url, XDG_STATE_HOME=state
    )
    env.pop("WX_SESSION_STORE", None)
    env.update({"WX_SESSION_STORE": store} if store else {})
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, env=env, cwd=_bench.PACKAGE_ROOT, stdout=subprocess.DEVNULL, stderr=log
        )
        info: Dict[str, Any] = {"port": port, "pid": process.pid, "errors": []}
        try:
            _bench.wait_for_port(port, process)
            yield info
        finally:
            _bench.stop(process)
            log.seek(0)
            lines = log.read().decode(errors="replace").splitlines()
            info["errors"] += [line for line in lines if "Traceback" in line or "Error" in line]


def wrk(port: int, token: Optional[str], seconds: float, connections: int) -> Dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s"]
        command += [script.name, "--timeout", "5s", f"http://127.0.0.1:{port}/api/me"]
        for name, value in _bench.miniprogram_headers(token):
            command += ["-H", f"{name}: {value}"]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
    data = json.loads(line[len("WRKJSON ") :])
    if data["errors"]:
        raise RuntimeError(f"wrk saw errors on port {port}: {data}")
    return {"rps": data["requests"] / (data["duration_us"] / 1e6), "requests": data["requests"],
            "p50_ms": data["p50_us"] / 1000, "p99_ms": data["p99_us"] / 1000}


async def python_load(
    port: int, token: Optional[str], seconds: float, connections: int
) -> Dict[str, float]:
    headers = _bench.miniprogram_headers(token)
    latencies: List[float] = []
    deadline = time.perf_counter() + seconds

    async def client(connection: _bench.Connection) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, _ = await connection.request("GET", "/api/me", headers)
            if status != 200:
                raise RuntimeError(f"/api/me answered {status}")
            latencies.append(time.perf_counter() - started)

    elapsed = await _bench.clients(port, connections, client)
    latencies.sort()
    return {"requests": len(latencies), "rps": len(latencies) / elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}


def load(port: int, token: Optional[str], seconds: float, connections: int) -> Dict[str, float]:
    if shutil.which("wrk"):
        return wrk(port, token, seconds, connections)
    return asyncio.run(python_load(port, token, seconds, connections))


def measure_requests(
    seconds: float = 3.0, rounds: int = 3, connections: int = 16, threads: int = 4
) -> Dict[str, Any]:
    """Both frameworks: bare, wrapped on SQLite (the default), on memory, and on Redis (a
    private server) when ``redis-server`` is installed."""
    results: Dict[str, Any] = {
        "load_generator": "wrk -t1" if shutil.which("wrk") else "Python asyncio driver",
        "connections": connections, "seconds": seconds, "rounds": rounds,
    }
    for name, (kind, wrapped, bare) in APPS.items():
        setups = {"bare": (bare, None), "sqlite": (wrapped, None), "memory": (wrapped, "memory://")}
        with contextlib.ExitStack() as stack:
            if _bench.PrivateRedis.available:
                setups["redis"] = (wrapped, stack.enter_context(_bench.PrivateRedis()).url)
            runs: Dict[str, List[Dict[str, float]]] = {variant: [] for variant in setups}
            fake = stack.enter_context(_bench.FakeWeChatProcess())
            state = stack.enter_context(tempfile.TemporaryDirectory())
            servers, tokens = {}, {}
            for variant, (app, store) in setups.items():
                info = stack.enter_context(server(kind, app, fake, state, store, threads=threads))
                servers[variant], code = info, fake.codes(1)[0]
                login = asyncio.run(_bench.post_login(info["port"], code))
                tokens[variant] = None if variant == "bare" else _bench.token_of(*login)
                load(info["port"], tokens[variant], 1, connections)  # warm up
            for variant in _bench.rotated(list(setups), rounds):
                pid, port = servers[variant]["pid"], servers[variant]["port"]
                cpu = _bench.process_tree_cpu(pid)
                item = load(port, tokens[variant], seconds, connections)
                item["cpu_us"] = 1e6 * (_bench.process_tree_cpu(pid) - cpu) / item["requests"]
                runs[variant].append(item)
        results[name] = summary = {"server": "uvicorn"}
        if kind == "gunicorn":
            summary["server"] = f"gunicorn -k gthread -w 1 --threads {threads}"
        for variant, items in runs.items():
            keys = ("rps", "p50_ms", "p99_ms", "cpu_us")
            summary[variant] = {key: _bench.median([item[key] for item in items]) for key in keys}
            pairs = list(zip(items, runs["bare"]))  # per-round ratios to the bare app
            ratios = [(w["rps"] / b["rps"], b["cpu_us"] / w["cpu_us"]) for w, b in pairs]
            summary[variant]["ratio_vs_bare"] = _bench.median([r for r, _ in ratios])
            summary[variant]["cpu_ratio_vs_bare"] = _bench.median([c for _, c in ratios])
    return results


async def drive_logins(port: int, codes: List[str], concurrency: int, failed: List[str]) -> float:
    """Logins/s of the successful logins; failed ones are appended to ``failed``."""
    pending, before = list(codes), len(failed)
    headers = [("Content-Type", "application/json")]

    async def client(connection: _bench.Connection) -> None:
        while pending:
            body = _bench.login_body(pending.pop())
            status, answer = await connection.request("POST", "/wx/login", headers, body)
            if status != 200:
                failed.append(f"{status} {answer[:120]!r}")

    elapsed = await _bench.clients(port, concurrency, client)
    return (len(codes) - (len(failed) - before)) / elapsed


def measure_wsgi_logins(
    concurrency: int = 100, latency: float = 0.1, rounds: int = 3, per_client: int = 5
) -> Dict[str, Any]:
    """Logins/s through gunicorn gthread (2 workers), wrapped (SQLite) and bare."""
    threads = -(-concurrency // 2)  # 2 workers, a thread per client
    runs: Dict[str, List[float]] = {"bare": [], "sqlite": []}
    failed: Dict[str, List[str]] = {"bare": [], "sqlite": []}
    cpu = {variant: {"server": [], "fake WeChat": [], "driver": []} for variant in runs}
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(_bench.FakeWeChatProcess(latency))
        state = stack.enter_context(tempfile.TemporaryDirectory())
        apps = {"bare": APPS["flask"][2], "sqlite": APPS["flask"][1]}
        servers = {
            variant: stack.enter_context(server("gunicorn", app, fake, state, None, 2, threads))
            for variant, app in apps.items()
        }
        for info in servers.values():  # warm up: connections, threads, the database
            asyncio.run(drive_logins(info["port"], fake.codes(concurrency), concurrency, []))
        for variant in _bench.rotated(list(servers), rounds):
            codes = fake.codes(concurrency * per_client)
            pids = (servers[variant]["pid"], fake.process.pid)
            before = [*map(_bench.process_tree_cpu, pids), time.process_time()]
            port = servers[variant]["port"]
            rate = asyncio.run(drive_logins(port, codes, concurrency, failed[variant]))
            runs[variant].append(rate)
            after = [*map(_bench.process_tree_cpu, pids), time.process_time()]
            for name, start, end in zip(cpu[variant], before, after):
                cpu[variant][name].append(1000 * (end - start) / len(codes))
    ideal = concurrency / latency
    return {
        "concurrency": concurrency, "latency": latency, "ideal": ideal,
        "server": f"gunicorn -k gthread -w 2 --threads {threads}",
        "rates": {variant: _bench.median(values) for variant, values in runs.items()},
        "of_ideal": {variant: _bench.median(values) / ideal for variant, values in runs.items()},
        "failed": {variant: len(items) for variant, items in failed.items()},
        "attempted": rounds * concurrency * per_client,
        "failure_examples": {variant: items[:1] for variant, items in failed.items()},
        "server_errors": {variant: info["errors"][:3] for variant, info in servers.items()},
        "cpu_ms_per_login": {
            variant: {name: _bench.median(values) for name, values in by_process.items()}
            for variant, by_process in cpu.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=4, help="gunicorn gthread threads")
    parser.add_argument("--skip-logins", action="store_true")
    args = parser.parse_args()
    options = (args.seconds, args.rounds, args.connections, args.threads)
    results = {"servers": measure_requests(*options)}
    if not args.skip_logins:
        results["wsgi_logins"] = measure_wsgi_logins(rounds=args.rounds)
    print(report.servers_table(results["servers"]))
    print(report.logins_table({}, results.get("wsgi_logins", {})))


if __name__ == "__main__":
    main()
