"""Login throughput of WxASGIMiddleware: many concurrent logins against a slow WeChat.

100 clients log in, in process, against the fake WeChat (a process of its own) answering
after 100 ms: bare app, memory store, SQLite store; driven by direct ASGI calls and through
``httpx.ASGITransport`` (RESULTS.md, *Login throughput*).
Run: ``python benchmarks/login_throughput.py [--concurrency 100] [--latency 0.1]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Sequence, Tuple

import _bench
import report

from wxmiddleware import AsyncMemoryStore, AsyncSQLiteStore, WxASGIMiddleware, WxConfig

ASGIApp = Callable[[Dict[str, Any], Any, Any], Awaitable[None]]


def bare_app(config: WxConfig) -> Tuple[ASGIApp, Any]:
    """An ASGI app that calls jscode2session itself: the upstream call and nothing else."""
    from wxmiddleware.wechat.aio import AsyncWeChatClient

    client = AsyncWeChatClient(config)

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        reply = await client.code_to_session(json.loads(message["body"])["code"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(reply.openid).encode()})

    return app, client


async def not_found(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def drive(driver: str, app: ASGIApp, codes: List[str], concurrency: int) -> float:
    """``concurrency`` clients logging in until the codes run out; logins/s."""
    import httpx

    pending = list(codes)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    http = httpx.AsyncClient(transport=transport, base_url="http://bench")

    async def login(code: str) -> int:
        if driver == "httpx":
            headers = dict(_bench.miniprogram_headers())
            return (await http.post("/wx/login", json={"code": code}, headers=headers)).status_code
        body = _bench.login_body(code)
        return (await _bench.call_asgi(app, _bench.scope(None, "POST", "/wx/login", body), body))[0]

    async def client() -> None:
        while pending:
            status = await login(pending.pop())
            if status != 200:
                raise RuntimeError(f"login failed: {status}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await http.aclose()
    return len(codes) / elapsed


def measure(
    concurrency: int = 100, latency: float = 0.1, per_client: int = 5, rounds: int = 3,
    drivers: Sequence[str] = ("direct", "httpx"),
) -> Dict[str, Any]:
    runs: Dict[Tuple[str, str], List[Tuple[float, float]]] = {}  # (driver, setup): [(rate, cpu)]
    with _bench.FakeWeChatProcess(latency) as fake, tempfile.TemporaryDirectory() as state:
        config = fake.config()

        async def main() -> None:
            bare, client = bare_app(config)
            stores = {"memory": AsyncMemoryStore(), "sqlite": AsyncSQLiteStore(Path(state) / "db")}
            apps: Dict[str, Any] = {"bare": bare}
            for key, store in stores.items():
                apps[key] = WxASGIMiddleware(not_found, config, store=store)
            for driver in drivers:  # warm up: connections to the fake, the database
                for app in apps.values():
                    await drive(driver, app, fake.codes(concurrency), concurrency)
            for name in _bench.rotated(list(apps), rounds):
                for driver in drivers:
                    codes, started = fake.codes(concurrency * per_client), time.process_time()
                    rate = await drive(driver, apps[name], codes, concurrency)
                    used = 1000 * (time.process_time() - started) / len(codes)
                    runs.setdefault((driver, name), []).append((rate, used))
            for closable in (*stores.values(), client):
                await _bench.aclose(closable)

        asyncio.run(main())
    ideal = concurrency / latency
    summary: Dict[str, Any] = {
        "concurrency": concurrency, "latency": latency, "ideal": ideal,
        "logins_per_round": concurrency * per_client, "rounds": rounds,
    }
    for (driver, name), values in runs.items():
        rates, bare = [rate for rate, _ in values], [rate for rate, _ in runs[driver, "bare"]]
        summary.setdefault(driver, {})[name] = {
            "rate": _bench.median(rates), "of_ideal": _bench.median(rates) / ideal,
            "of_bare": _bench.median([r / b for r, b in zip(rates, bare)]),
            "cpu_ms_app_process": _bench.median([cpu for _, cpu in values]), "runs": rates,
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.1, help="fake WeChat latency (s)")
    parser.add_argument("--per-client", type=int, default=5, help="logins per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--drivers", default="direct,httpx")
    args = parser.parse_args()
    options = (args.concurrency, args.latency, args.per_client, args.rounds)
    with _bench.quiet_logging():
        results = measure(*options, args.drivers.split(","))
    print(f"ideal {results['ideal']:.0f} logins/s")
    print(report.logins_table(results, {}))


if __name__ == "__main__":
    main()
