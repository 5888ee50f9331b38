"""Run every benchmark; write benchmarks/results.json, then RESULTS.md and docs/benchmarks.png
(report.py). A part that fails is recorded and the others run.

    python benchmarks/run_all.py          # about 7 minutes on 2 cores (--quick: fewer rounds)
    python benchmarks/run_all.py --save-baseline  # also record this run as the "before"
    python benchmarks/run_all.py --only overhead,servers   # the rest kept from results.json
"""

import argparse
import datetime
import json
import socket
import sys
import time
import traceback
import urllib.parse
from typing import Any, Callable, Dict, Optional

import _bench
import logins
import overhead
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


def parts(quick: bool, redis_url: Optional[str]) -> Dict[str, Callable[[], Any]]:
    in_process = overhead.Options(rounds=25 if quick else 60)
    login_rounds, login_load = 2 if quick else 3, logins.Logins(per_client=3 if quick else 4)
    return {
        "overhead": lambda: overhead.measure(in_process, redis_url),
        "redis_commands": lambda: overhead.redis_commands(redis_url or ""),
        "asgi_logins": lambda: logins.measure_asgi(login_load, login_rounds),
        "wsgi_logins": lambda: logins.measure_wsgi(login_load, login_rounds),
        "servers": lambda: servers.measure(seconds=1, rounds=4 if quick else 10),
        "sqlite_loop": lambda: logins.loop_lag(runs=1 if quick else 3),
        "scale": lambda: scale.measure(scale.SIZES[:2] if quick else scale.SIZES, redis_url),
    }


def run(args: argparse.Namespace) -> Dict[str, Any]:
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results: Dict[str, Any] = {"started": started, "machine": _bench.machine(), "quick": args.quick}
    began = time.monotonic()
    with _bench.private_redis() as url:
        if url:
            results["loopback_rtt_us"] = loopback_rtt(urllib.parse.urlsplit(url).port or 0)
        for name, function in parts(args.quick, url).items():
            if (args.only and name not in args.only) or (name == "redis_commands" and not url):
                continue
            part_started = time.monotonic()
            print(f"== {name} ...", flush=True)
            try:
                results[name] = function()
            except Exception as exc:  # one broken part must not cost the whole run
                traceback.print_exc()
                results.setdefault("failures", {})[name] = f"{type(exc).__name__}: {exc}"
            print(f"   {name}: {time.monotonic() - part_started:.0f} s", flush=True)
    results["seconds"] = time.monotonic() - began
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--only", type=lambda text: text.split(","), help="comma-separated parts")
    parser.add_argument("--save-baseline", action="store_true", help="record as the 'before'")
    args = parser.parse_args()
    results = run(args)
    if args.only:  # the other parts keep their figures (and failures) from the last run
        last = report.load(report.RESULTS_JSON) or {}
        failed = {k: v for k, v in last.get("failures", {}).items() if k not in args.only}
        results = {**last, **results, "failures": {**failed, **results.get("failures", {})}}
    # One line per part: the data stays diffable part by part without a line per number.
    lines = (f"{json.dumps(k)}: {json.dumps(v, default=str)}" for k, v in results.items())
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    report.RESULTS_JSON.write_text(text)
    if args.save_baseline:
        report.BASELINE_JSON.write_text(text)
    report.main()
    print(f"done in {results['seconds']:.0f} s; failures: {results.get('failures') or 'none'}")
    return 1 if results.get("failures") else 0


if __name__ == "__main__":
    sys.exit(main())
