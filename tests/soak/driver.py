"""Soak test: many simulated mini-program users log in, call the API and log out, for a while.

Run it in its own process against a running example app and fake WeChat (loopback only):

    python tests/soak/driver.py --app http://127.0.0.1:8000 --wechat http://127.0.0.1:8601 \
        --users 50 --duration 60

Each user loops: get a code from the fake WeChat, log in, call ``/api/me`` several times, log
out, check the old token is refused. Every ``/api/me`` answer must carry the openid that user
was first given and no other user's. Prints one JSON object: requests, errors (any answer other
than the expected one), cross-user answers, latency percentiles. Exits 1 when errors or
cross-user answers occurred. Bounded by ``--duration`` and by request timeouts.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from typing import Dict, List
from urllib.parse import urlparse

import requests

LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Seconds between one simulated user's logins: under WeChat's 100 per minute.
LOGIN_INTERVAL = 0.7


class Tally:
    """Counts shared by every simulated user."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.errors: Counter[str] = Counter()
        self.cross_user = 0
        self.latencies: List[float] = []
        self.openid_owner: Dict[str, str] = {}

    def record(self, seconds: float) -> None:
        with self.lock:
            self.requests += 1
            self.latencies.append(seconds)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] += 1

    def check_answer(self, user: str, expected: str, openid: str) -> None:
        """Count a cross-user answer: not this user's openid, or one another user owns."""
        with self.lock:
            owner = self.openid_owner.setdefault(openid, user)
            if openid != expected or owner != user:
                self.cross_user += 1


def simulate_user(
    user: str, app: str, wechat: str, deadline: float, calls: int, tally: Tally
) -> None:
    http = requests.Session()
    my_openid = None

    def timed(method: str, url: str, **kwargs: object) -> requests.Response:
        started = time.perf_counter()
        response = http.request(method, url, timeout=10, **kwargs)  # type: ignore[arg-type]
        tally.record(time.perf_counter() - started)
        return response

    next_login = 0.0
    while time.monotonic() < deadline:
        # WeChat allows 100 logins per user per minute (45011); a real user logs in far less.
        time.sleep(max(0.0, next_login - time.monotonic()))
        next_login = time.monotonic() + LOGIN_INTERVAL
        try:
            code = http.get(f"{wechat}/fake/code", params={"user": user}, timeout=10).json()["code"]
            login = timed("POST", f"{app}/wx/login", json={"code": code})
            if login.status_code != 200:
                tally.error(f"login {login.status_code}")
                continue
            token = login.json()["3rd_session"]
            headers = {"3rd-session": token}
            for _ in range(calls):
                me = timed("GET", f"{app}/api/me", headers=headers)
                if me.status_code != 200:
                    tally.error(f"me {me.status_code}")
                    continue
                openid = me.json()["openid"]
                my_openid = my_openid or openid
                tally.check_answer(user, my_openid, openid)
            if timed("POST", f"{app}/wx/logout", headers=headers).status_code != 204:
                tally.error("logout")
            if timed("GET", f"{app}/api/me", headers=headers).status_code != 401:
                tally.error("token alive after logout")
        except (requests.RequestException, ValueError, KeyError) as exc:
            tally.error(type(exc).__name__)


def percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", required=True, help="base URL of the app (loopback)")
    parser.add_argument("--wechat", required=True, help="base URL of the fake WeChat (loopback)")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--calls", type=int, default=5, help="/api/me calls per login")
    args = parser.parse_args()
    for url in (args.app, args.wechat):
        if urlparse(url).hostname not in LOOPBACK:
            parser.error(f"{url} is not a loopback address: the soak only targets this machine")
    tally = Tally()
    deadline = time.monotonic() + args.duration
    started = time.monotonic()
    threads = [
        threading.Thread(
            target=simulate_user,
            args=(f"soak-user-{n}", args.app, args.wechat, deadline, args.calls, tally),
            daemon=True,
        )
        for n in range(args.users)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.duration + 30)
    elapsed = time.monotonic() - started
    report = {
        "users": args.users,
        "seconds": round(elapsed, 1),
        "requests": tally.requests,
        "requests_per_second": round(tally.requests / elapsed, 1),
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "cross_user_answers": tally.cross_user,
        "distinct_openids": len(tally.openid_owner),
        "p50_ms": round(percentile(tally.latencies, 0.5) * 1000, 2),
        "p99_ms": round(percentile(tally.latencies, 0.99) * 1000, 2),
    }
    print(json.dumps(report))
    return 1 if report["errors"] or report["cross_user_answers"] else 0


if __name__ == "__main__":
    sys.exit(main())
