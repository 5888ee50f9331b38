"""Login throughput of WxASGIMiddleware: many concurrent logins against a slow WeChat.

100 clients log in back to back, in process through httpx's ASGI transport, against the fake
WeChat answering every jscode2session after 100 ms. The fake runs in a process of its own, so
its threads do not compete with the event loop for the GIL. The ideal is concurrency ÷
latency = 1000 logins/s; the script prints what each setup achieves as a ratio of it:

- bare app: an ASGI app that only calls jscode2session (with the same client) and answers,
  no middleware, no sessions: what the harness and the upstream call alone allow;
- WxASGIMiddleware with the in-process memory store, and with the default SQLite store.

Run: ``python benchmarks/login_throughput.py [--concurrency 100] [--latency 0.1]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Tuple

import httpx

from wxmiddleware import AsyncMemoryStore, AsyncSQLiteStore, WxASGIMiddleware, WxConfig
from wxmiddleware.testing import FakeWeChat
from wxmiddleware.wechat.aio import AsyncWeChatClient

ASGIApp = Callable[[Dict[str, Any], Any, Any], Awaitable[None]]


def serve_fake_wechat(conn: Connection, latency: float) -> None:
    """Run the fake WeChat in this (child) process; hand out codes on request."""
    with FakeWeChat(latency=latency) as fake:
        conn.send((fake.url, fake.appid, fake.secret))
        batch = 0
        while True:
            count = conn.recv()
            if count is None:
                return
            batch += 1
            # One user per code: the fake allows 100 logins per user and minute.
            conn.send([fake.issue_code(f"user-{batch}-{n}") for n in range(count)])


def bare_app(config: WxConfig) -> ASGIApp:
    """An ASGI app that calls jscode2session itself: the upstream call and nothing else."""
    wechat = AsyncWeChatClient(config)

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        reply = await wechat.code_to_session(json.loads(message["body"])["code"])
        body = json.dumps({"openid": reply.openid}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


async def not_found(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def logins_per_second(app: ASGIApp, codes: List[str], concurrency: int) -> float:
    """Drive ``concurrency`` clients through every code; return the achieved rate."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        pending = list(codes)

        async def client_loop() -> None:
            while pending:
                response = await client.post("/wx/login", json={"code": pending.pop()})
                if response.status_code != 200:
                    raise RuntimeError(f"login failed: {response.status_code} {response.text}")

        started = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        return len(codes) / (time.perf_counter() - started)


async def run(
    conn: Connection, config: WxConfig, concurrency: int, rounds: int, state: Path
) -> List[Tuple[str, float]]:
    def codes(count: int) -> List[str]:
        conn.send(count)
        issued: List[str] = conn.recv()
        return issued

    setups: List[Tuple[str, ASGIApp]] = [
        ("bare app (jscode2session only)", bare_app(config)),
        (
            "WxASGIMiddleware, memory store",
            WxASGIMiddleware(not_found, config, store=AsyncMemoryStore()),
        ),
        (
            "WxASGIMiddleware, SQLite store",
            WxASGIMiddleware(not_found, config, store=AsyncSQLiteStore(state / "s.sqlite3")),
        ),
    ]
    results = []
    for name, app in setups:
        await logins_per_second(app, codes(concurrency), concurrency)  # warm up connections
        rate = await logins_per_second(app, codes(concurrency * rounds), concurrency)
        results.append((name, rate))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.1, help="fake WeChat latency (s)")
    parser.add_argument("--rounds", type=int, default=10, help="logins per client")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    conn, child_conn = context.Pipe()
    fake = context.Process(target=serve_fake_wechat, args=(child_conn, args.latency))
    fake.start()
    try:
        url, appid, secret = conn.recv()
        config = WxConfig(appid=appid, secret=secret, api_base=url)
        with tempfile.TemporaryDirectory() as state:
            results = asyncio.run(run(conn, config, args.concurrency, args.rounds, Path(state)))
    finally:
        conn.send(None)
        fake.join()

    ideal = args.concurrency / args.latency
    print(
        f"{args.concurrency} concurrent logins x {args.rounds}, WeChat latency "
        f"{args.latency * 1000:.0f} ms: ideal {ideal:.0f} logins/s"
    )
    bare = results[0][1]
    for name, rate in results:
        print(f"  {name:32} {rate:6.0f} logins/s", end="")
        print(f"  {rate / ideal:.2f} of ideal  {rate / bare:.2f} of bare")


if __name__ == "__main__":
    main()
