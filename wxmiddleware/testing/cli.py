"""``python -m wxmiddleware.testing``: a fake WeChat in the foreground, for tests outside Python."""

from __future__ import annotations

import argparse
import threading
from typing import Optional, Sequence

from .server import FakeWeChat

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a FakeWeChat in the foreground until interrupted (``python -m wxmiddleware.testing``).

    The first line printed is ``FakeWeChat listening on <url>``; the exit status is 0 after
    Ctrl-C and 1 when the port cannot be bound.
    """
    parser = argparse.ArgumentParser(
        prog="python -m wxmiddleware.testing",
        description="Serve a fake WeChat API (login, access tokens, checksession, phone numbers).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=8601, help="port; 0 picks a free one")
    parser.add_argument("--appid", default=FakeWeChat.DEFAULT_APPID, help="the appid to accept")
    parser.add_argument("--secret", default=FakeWeChat.DEFAULT_SECRET, help="the secret to accept")
    parser.add_argument(
        "--app",
        action="append",
        default=[],
        metavar="APPID=SECRET",
        help="another mini-program to serve beside --appid (repeatable)",
    )
    args = parser.parse_args(argv)
    apps = {}
    for app in args.app:
        appid, equals, secret = app.partition("=")
        if not (appid and equals and secret):
            parser.error(f"--app takes APPID=SECRET, not {app!r}")
        apps[appid] = secret
    fake = FakeWeChat(args.appid, args.secret, host=args.host, port=args.port, apps=apps)
    try:
        fake.start()
    except OSError as exc:
        parser.exit(1, f"cannot listen on {args.host}:{args.port}: {exc}\n")
    try:
        print(f"FakeWeChat listening on {fake.url}", flush=True)
        print(f"  appid={fake.appid} secret={fake.secret}", flush=True)
        for appid in apps:
            print(f"  also appid={appid}: curl '{fake.url}/fake/code?user=alice&appid={appid}'")
        print(f"  get a login code:  curl '{fake.url}/fake/code?user=alice'", flush=True)
        print(f"  get a phone code:  curl '{fake.url}/fake/phone_code?phone=13800138000'")
        print("  faults: POST /fake/fault, calls: GET /fake/calls, reset: POST /fake/reset")
        print("Press Ctrl-C to stop.", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0
