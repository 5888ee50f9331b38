"""Run every benchmark; write benchmarks/results.json, then RESULTS.md and docs/benchmarks.png.

    python benchmarks/run_all.py                  # about 3 minutes on 2 cores
    python benchmarks/run_all.py --quick          # fewer rounds
    python benchmarks/run_all.py --save-baseline  # also record this run as the "before"
    python benchmarks/run_all.py --only overhead,servers   # the rest kept from results.json

The parts (each module also runs alone): ``overhead`` (overhead.py), ``redis_commands``,
``asgi_logins`` (login_throughput.py), ``wsgi_logins`` and ``servers`` (servers.py),
``sqlite_loop`` (asgi_sqlite_loop.py), ``scale`` (scale.py: 10^3 to 10^6 stored sessions,
10^5 at most with ``--quick``). A part that fails is recorded and the others run.
``report.py`` and ``chart.py`` then redraw from results.json; each also runs alone.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import socket
import sys
import time
import traceback
from typing import Any, Callable, Dict

import _bench
import asgi_sqlite_loop
import chart
import login_throughput
import overhead
import redis_commands
import report
import scale
import servers


def loopback_rtt(port: int, count: int = 2000) -> float:
    """µs for one ``PING`` round trip on a raw socket: what any network store pays here."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.perf_counter()
        for _ in range(count):
            sock.sendall(b"PING\r\n")
            sock.recv(64)
        return 1e6 * (time.perf_counter() - started) / count


def parts(quick: bool, redis_url: str) -> Dict[str, Callable[[], Any]]:
    logins = {"per_client": 3 if quick else 4, "rounds": 2 if quick else 3}
    return {
        "overhead": lambda: overhead.measure(25 if quick else 60, 150, redis_url or None),
        "redis_commands": redis_commands.measure,
        "asgi_logins": lambda: login_throughput.measure(**logins),
        "wsgi_logins": lambda: servers.measure_wsgi_logins(**logins),
        "servers": lambda: servers.measure_requests(seconds=1, rounds=4 if quick else 10),
        "sqlite_loop": lambda: asgi_sqlite_loop.measure(runs=1 if quick else 3),
        "scale": lambda: scale.measure(scale.SIZES[:2] if quick else scale.SIZES,
                                       redis_url=redis_url or None),
    }


def run(args: argparse.Namespace) -> Dict[str, Any]:
    results: Dict[str, Any] = {
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _bench.machine(), "quick": args.quick,
    }
    began = time.monotonic()
    with _bench.quiet_logging(), contextlib.ExitStack() as stack:
        url = ""
        if _bench.PrivateRedis.available:
            redis = stack.enter_context(_bench.PrivateRedis())
            url, results["loopback_rtt_us"] = redis.url, loopback_rtt(redis.port)
        for name, function in parts(args.quick, url).items():
            if (args.only and name not in args.only) or (name == "redis_commands" and not url):
                continue
            started = time.monotonic()
            print(f"== {name} ...", flush=True)
            try:
                results[name] = function()
            except Exception as exc:  # one broken part must not cost the whole run
                traceback.print_exc()
                results.setdefault("failures", {})[name] = f"{type(exc).__name__}: {exc}"
            print(f"   {name}: {time.monotonic() - started:.0f} s", flush=True)
    results["seconds"] = time.monotonic() - began
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--only", type=lambda text: text.split(","), help="comma-separated parts")
    parser.add_argument("--save-baseline", action="store_true", help="record as the 'before'")
    args = parser.parse_args()
    results = run(args)
    if args.only:  # the other parts keep their figures from the last run
        results = {**(report.load(report.RESULTS_JSON) or {}), **results}
    # One line per part: the data stays diffable part by part without a line per number.
    parts = (f"{json.dumps(k)}: {json.dumps(v, default=str)}" for k, v in results.items())
    text = "{\n" + ",\n".join(parts) + "\n}\n"
    report.RESULTS_JSON.write_text(text)
    if args.save_baseline:
        report.BASELINE_JSON.write_text(text)
    report.main()
    try:
        chart.main()
    except ImportError:
        print("matplotlib is not installed: no chart (pip install -r benchmarks/requirements.txt)")
    print(f"done in {results['seconds']:.0f} s; failures: {results.get('failures') or 'none'}")
    return 1 if results.get("failures") else 0


if __name__ == "__main__":
    sys.exit(main())
