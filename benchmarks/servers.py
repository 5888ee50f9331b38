"""Over real servers: the examples under gunicorn and uvicorn, wrapped vs bare, on loopback.

Two measurements, each with the servers in processes of their own and the load from another:

- **requests**: an authenticated ``GET /api/me`` as fast as ``wrk`` can send it (a Python
  driver when ``wrk`` is missing) for a few seconds, against the Flask example under gunicorn
  (one gthread worker) and the Starlette example under uvicorn (one worker), each on the
  default SQLite store and on the memory store, and against the bare app
  (``benchmarks/bare_*_app.py``); requests/s, p50/p99 latency and the server's CPU time per
  request (from ``/proc``: unlike requests/s, hardly moved by other jobs on the machine), in
  alternating rounds;
- **WSGI logins**: many concurrent logins against the fake WeChat answering after a
  latency, through the Flask example under gunicorn gthread (enough threads for every
  client), driven by keep-alive connections from this process; compared with the ideal,
  concurrency ÷ latency, and with the bare app's ``/wx/login`` (jscode2session only).

Run: ``python benchmarks/servers.py [--seconds 3] [--rounds 3]``. Loopback only; every
process started here is stopped by its own handle at the end.
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
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import _bench

WRK_SCRIPT = """
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"errors": %d, "non2xx": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout, summary.errors.status))
end
"""

#: The pid of the server process listening on each port (for CPU accounting).
SERVER_PIDS: Dict[int, int] = {}
#: Error lines each server logged, by "kind app" (filled when the server stops).
SERVER_ERRORS: Dict[str, List[str]] = {}

FLASK = {"wrapped": "examples.flask_app:app", "bare": "benchmarks.bare_flask_app:app"}
STARLETTE = {"wrapped": "examples.starlette_app:app", "bare": "benchmarks.bare_starlette_app:app"}


def server_env(fake: _bench.FakeWeChatProcess, state: Path, store: Optional[str]) -> Dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(_bench.ROOT),
        "WX_APPID": fake.appid,
        "WX_SECRET": fake.secret,
        "WX_API_BASE": fake.url,
        "XDG_STATE_HOME": str(state),
    }
    env.pop("WX_SESSION_STORE", None)
    if store is not None:
        env["WX_SESSION_STORE"] = store
    return env


@contextlib.contextmanager
def server(
    kind: str, app: str, env: Dict[str, str], workers: int = 1, threads: int = 4
) -> Iterator[int]:
    """Start gunicorn (gthread) or uvicorn on a free port; yield the port; stop it."""
    port = _bench.free_port()
    bindir = Path(_bench.PYTHON).parent
    if kind == "gunicorn":
        command = [
            str(bindir / "gunicorn"),
            "-k",
            "gthread",
            "-w",
            str(workers),
            "--threads",
            str(threads),
            "-b",
            f"127.0.0.1:{port}",
            "--backlog",
            "2048",
            "--log-level",
            "warning",
            app,
        ]
    else:
        command = [
            str(bindir / "uvicorn"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
            app,
        ]
    process = subprocess.Popen(
        command, env=env, cwd=str(_bench.ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _bench.wait_for_port(port, process=process)
        SERVER_PIDS[port] = process.pid
        yield port
    finally:
        _bench.stop(process)
        if process.stderr is not None:
            errors = process.stderr.read().decode(errors="replace").strip()
            process.stderr.close()
            noisy = [line for line in errors.splitlines() if "Traceback" in line or "Error" in line]
            SERVER_ERRORS.setdefault(f"{kind} {app}", []).extend(noisy)
            if noisy:
                print(f"    ({kind} {app} logged {len(noisy)} errors, e.g.: {noisy[0][:200]})")


async def _login(port: int, code: str) -> str:
    connection = _bench.Connection("127.0.0.1", port)
    try:
        status, body = await connection.request(
            "POST",
            "/wx/login",
            [("Content-Type", "application/json")],
            json.dumps({"code": code}).encode(),
        )
    finally:
        await connection.close()
    if status != 200:
        raise RuntimeError(f"login on port {port} answered {status}: {body[:200]!r}")
    token: str = json.loads(body)["3rd_session"]
    return token


def log_in(port: int, code: str) -> str:
    return asyncio.run(_login(port, code))


# --- load generators ---------------------------------------------------------------------


def wrk(port: int, token: Optional[str], seconds: float, connections: int) -> Dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        script.name,
    ]
    if token is not None:
        command += ["-H", f"3rd-session: {token}"]
    command.append(f"http://127.0.0.1:{port}/api/me")
    try:
        out = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 30, check=True
        ).stdout
    finally:
        os.unlink(script.name)
    line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
    data = json.loads(line[len("WRKJSON ") :])
    if data["errors"] or data["non2xx"]:
        raise RuntimeError(f"wrk saw errors on port {port}: {data}")
    return {
        "rps": data["requests"] / (data["duration_us"] / 1e6),
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "requests": float(data["requests"]),
    }


async def _python_load(
    port: int, token: Optional[str], seconds: float, connections: int
) -> Dict[str, float]:
    headers = [("3rd-session", token)] if token else []
    latencies: List[float] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        connection = _bench.Connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status, _ = await connection.request("GET", "/api/me", headers)
                if status != 200:
                    raise RuntimeError(f"/api/me answered {status}")
                latencies.append(time.perf_counter() - started)
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": float(len(latencies)),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }


def load(port: int, token: Optional[str], seconds: float, connections: int) -> Dict[str, float]:
    if shutil.which("wrk"):
        return wrk(port, token, seconds, connections)
    return asyncio.run(_python_load(port, token, seconds, connections))


# --- the measurements --------------------------------------------------------------------


def measure_requests(
    fake: _bench.FakeWeChatProcess,
    seconds: float = 3.0,
    rounds: int = 3,
    connections: int = 16,
    threads: int = 4,
) -> Dict[str, Any]:
    """Both frameworks: bare, wrapped on SQLite (the default), wrapped on memory."""
    results: Dict[str, Any] = {
        "load_generator": "wrk -t1" if shutil.which("wrk") else "Python asyncio driver",
        "connections": connections,
        "seconds": seconds,
        "rounds": rounds,
    }
    for name, kind, apps in (("flask", "gunicorn", FLASK), ("starlette", "uvicorn", STARLETTE)):
        with tempfile.TemporaryDirectory() as state, contextlib.ExitStack() as stack:
            ports: Dict[str, int] = {}
            tokens: Dict[str, Optional[str]] = {"bare": None}
            ports["bare"] = stack.enter_context(
                server(kind, apps["bare"], server_env(fake, Path(state), None), threads=threads)
            )
            for variant, store in (("sqlite", None), ("memory", "memory://")):
                ports[variant] = stack.enter_context(
                    server(
                        kind, apps["wrapped"], server_env(fake, Path(state), store), threads=threads
                    )
                )
                tokens[variant] = log_in(ports[variant], fake.codes(1)[0])
            runs: Dict[str, List[Dict[str, float]]] = {variant: [] for variant in ports}
            for variant in ports:  # warm up
                load(ports[variant], tokens[variant], 1, connections)
            order = list(ports)
            for round_number in range(rounds):
                shift = round_number % len(order)
                for variant in order[shift:] + order[:shift]:
                    pid = SERVER_PIDS[ports[variant]]
                    cpu = _bench.process_tree_cpu(pid)
                    item = load(ports[variant], tokens[variant], seconds, connections)
                    cpu = _bench.process_tree_cpu(pid) - cpu
                    item["cpu_us"] = 1e6 * cpu / item["requests"]
                    runs[variant].append(item)
        summary: Dict[str, Any] = {}
        for variant, items in runs.items():
            summary[variant] = {
                key: _bench.median([item[key] for item in items])
                for key in ("rps", "p50_ms", "p99_ms", "cpu_us")
            }
        for variant in ("sqlite", "memory"):
            summary[variant]["ratio_vs_bare"] = _bench.median(
                [w["rps"] / b["rps"] for w, b in zip(runs[variant], runs["bare"])]
            )
            summary[variant]["cpu_ratio_vs_bare"] = _bench.median(
                [b["cpu_us"] / w["cpu_us"] for w, b in zip(runs[variant], runs["bare"])]
            )
        summary["server"] = (
            f"gunicorn -k gthread -w 1 --threads {threads}"
            if kind == "gunicorn"
            else "uvicorn --workers 1"
        )
        results[name] = summary
    return results


async def _drive_logins(
    port: int, codes: List[str], concurrency: int, failures: Optional[List[str]] = None
) -> float:
    """Logins/s of the successful logins; failed ones are appended to ``failures``."""
    failed: List[str] = [] if failures is None else failures
    rate = await _drive(port, codes, concurrency, failed)
    if failures is None and failed:
        raise RuntimeError(f"{len(failed)} logins failed, e.g. {failed[0]}")
    return rate


async def _drive(port: int, codes: List[str], concurrency: int, failures: List[str]) -> float:
    pending = list(codes)

    async def client() -> None:
        connection = _bench.Connection("127.0.0.1", port)
        try:
            while pending:
                code = pending.pop()
                status, body = await connection.request(
                    "POST",
                    "/wx/login",
                    [("Content-Type", "application/json")],
                    json.dumps({"code": code}).encode(),
                )
                if status != 200:
                    failures.append(f"{status} {body[:120]!r}")
        finally:
            await connection.close()

    started = time.perf_counter()
    before = len(failures)
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return (len(codes) - (len(failures) - before)) / elapsed


def measure_wsgi_logins(
    concurrency: int = 100,
    latency: float = 0.1,
    rounds: int = 3,
    per_client: int = 5,
    workers: int = 2,
) -> Dict[str, Any]:
    """Logins/s through gunicorn gthread, wrapped (SQLite, the default) and bare."""
    threads = -(-concurrency // workers)
    runs: Dict[str, List[float]] = {}
    cpu: Dict[str, Dict[str, List[float]]] = {}
    failed: Dict[str, List[str]] = {}
    attempted: Dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(_bench.FakeWeChatProcess(latency))
        state = stack.enter_context(tempfile.TemporaryDirectory())
        # Exited in reverse: the servers stop before the fake WeChat and the state go.
        ports = {
            "bare": stack.enter_context(
                server(
                    "gunicorn",
                    FLASK["bare"],
                    server_env(fake, Path(state), None),
                    workers,
                    threads,
                )
            ),
            "sqlite": stack.enter_context(
                server(
                    "gunicorn",
                    FLASK["wrapped"],
                    server_env(fake, Path(state), None),
                    workers,
                    threads,
                )
            ),
        }
        for variant, port in ports.items():  # warm up: connections, threads, the database
            asyncio.run(_drive_logins(port, fake.codes(concurrency), concurrency, []))
            runs[variant] = []
            failed[variant] = []
            attempted[variant] = 0
            cpu[variant] = {"server": [], "fake WeChat": [], "driver": []}
        order = list(ports)
        assert fake.process is not None
        for round_number in range(rounds):
            shift = round_number % len(order)
            for variant in order[shift:] + order[:shift]:
                codes = fake.codes(concurrency * per_client)
                pid = SERVER_PIDS[ports[variant]]
                before = (
                    _bench.process_tree_cpu(pid),
                    _bench.process_tree_cpu(fake.process.pid),
                    time.process_time(),
                )
                runs[variant].append(
                    asyncio.run(_drive_logins(ports[variant], codes, concurrency, failed[variant]))
                )
                attempted[variant] += len(codes)
                after = (
                    _bench.process_tree_cpu(pid),
                    _bench.process_tree_cpu(fake.process.pid),
                    time.process_time(),
                )
                for name, start, end in zip(cpu[variant], before, after):
                    cpu[variant][name].append(1000 * (end - start) / len(codes))
    ideal = concurrency / latency
    return {
        "concurrency": concurrency,
        "latency": latency,
        "ideal": ideal,
        "server": f"gunicorn -k gthread -w {workers} --threads {threads}",
        "rates": {variant: _bench.median(values) for variant, values in runs.items()},
        "of_ideal": {variant: _bench.median(values) / ideal for variant, values in runs.items()},
        "sqlite_vs_bare": _bench.median([w / b for w, b in zip(runs["sqlite"], runs["bare"])]),
        "failed": {variant: len(items) for variant, items in failed.items()},
        "attempted": attempted,
        "failure_examples": {variant: items[:1] for variant, items in failed.items()},
        "server_errors": {
            variant: SERVER_ERRORS.get(
                f"gunicorn {FLASK['bare' if variant == 'bare' else 'wrapped']}"
            )
            or []
            for variant in failed
        },
        "cpu_ms_per_login": {
            variant: {name: _bench.median(values) for name, values in by_process.items()}
            for variant, by_process in cpu.items()
        },
        "runs": runs,
    }


def report_requests(results: Dict[str, Any]) -> str:
    lines = [
        f"  load: {results['load_generator']}, {results['connections']} connections,"
        f" {results['seconds']} s x {results['rounds']} rounds per variant"
    ]
    for name in ("flask", "starlette"):
        data = results[name]
        lines.append(f"  {name} ({data['server']}):")
        for variant in ("bare", "sqlite", "memory"):
            item = data[variant]
            extra = (
                f"  {item['ratio_vs_bare']:.2f} of bare (CPU: {item['cpu_ratio_vs_bare']:.2f})"
                if "ratio_vs_bare" in item
                else ""
            )
            lines.append(
                f"    {variant:8} {item['rps']:8.0f} req/s  p50 {item['p50_ms']:6.2f} ms"
                f"  p99 {item['p99_ms']:6.2f} ms  server CPU {item['cpu_us']:6.0f} µs/req{extra}"
            )
    return "\n".join(lines)


def report_logins(results: Dict[str, Any]) -> str:
    lines = [
        f"  {results['concurrency']} concurrent logins, WeChat latency"
        f" {results['latency'] * 1000:.0f} ms, {results['server']}: ideal {results['ideal']:.0f}/s"
    ]
    for variant, rate in results["rates"].items():
        shares = results["cpu_ms_per_login"][variant]
        lines.append(
            f"    {variant:8} {rate:6.0f} logins/s  {results['of_ideal'][variant]:.2f} of ideal;"
            f" failed {results['failed'][variant]} of {results['attempted'][variant]}"
        )
        lines.append(
            "      CPU per login: "
            + ", ".join(f"{name} {value:.2f} ms" for name, value in shares.items())
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=4, help="gunicorn gthread threads")
    parser.add_argument("--skip-logins", action="store_true")
    args = parser.parse_args()
    with _bench.FakeWeChatProcess() as fake:
        results = measure_requests(fake, args.seconds, args.rounds, args.connections, args.threads)
        print(report_requests(results))
    if not args.skip_logins:
        print(report_logins(measure_wsgi_logins(rounds=args.rounds)))


if __name__ == "__main__":
    main()
