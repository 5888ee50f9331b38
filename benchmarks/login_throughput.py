"""Login throughput of WxASGIMiddleware: many concurrent logins against a slow WeChat.

100 clients log in back to back, in process, against the fake WeChat answering every
jscode2session after 100 ms. The fake runs in a process of its own, so its threads do not
compete with the event loop for the GIL. The ideal is concurrency ÷ latency = 1000 logins/s;
the script prints what each setup achieves as a ratio of it:

- bare app: an ASGI app that only calls jscode2session (with the same client) and answers,
  no middleware, no sessions: what the harness and the upstream call alone allow;
- WxASGIMiddleware with the in-process memory store, and with the default SQLite store.

Two drivers send the logins, each through the same event loop as the app:

- ``direct``: the ASGI app is called with a scope, ``receive`` and ``send`` (no HTTP client:
  the driver costs a few µs per login, so the figure is the middleware's own);
- ``httpx``: an ``httpx.AsyncClient`` over ``httpx.ASGITransport``, as before; it spends about
  0.25 ms of CPU per login in the driver, in the same process as the app.

Rounds alternate between the setups; the figures are medians.

``--client-settings`` instead compares settings of the ``httpx.AsyncClient`` that calls
jscode2session (the bare app, direct driver): logins/s, CPU per login and TCP connections
opened per login. Some settings are pathological (20 ms of CPU per login), so this takes a
few minutes and is not part of ``run_all.py``.

Run: ``python benchmarks/login_throughput.py [--concurrency 100] [--latency 0.1]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

import _bench
import httpx

from wxmiddleware import AsyncMemoryStore, AsyncSQLiteStore, WxASGIMiddleware, WxConfig
from wxmiddleware.wechat._exclusive import ExclusiveConnectionTransport
from wxmiddleware.wechat.aio import AsyncWeChatClient

ASGIApp = Callable[[Dict[str, Any], Any, Any], Awaitable[None]]
Driver = Callable[[ASGIApp, List[str], int], Awaitable[float]]


def bare_app(config: WxConfig, wechat: Optional[AsyncWeChatClient] = None) -> ASGIApp:
    """An ASGI app that calls jscode2session itself: the upstream call and nothing else."""
    client = wechat if wechat is not None else AsyncWeChatClient(config)

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        reply = await client.code_to_session(json.loads(message["body"])["code"])
        body = json.dumps({"openid": reply.openid}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


async def not_found(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def via_httpx(app: ASGIApp, codes: List[str], concurrency: int) -> float:
    """Drive ``concurrency`` httpx clients through every code; return the achieved rate."""
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


def login_scope(body: bytes) -> Dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/wx/login",
        "raw_path": b"/wx/login",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("bench", 80),
    }


async def call_login(app: ASGIApp, code: str) -> Tuple[int, bytes]:
    """One login, by calling the ASGI app as a server would."""
    body = json.dumps({"code": code}).encode()
    delivered = False

    async def receive() -> Dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # a client that stays connected
        raise AssertionError("unreachable")

    status = 0
    chunks: List[bytes] = []

    async def send(message: Dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            chunks.append(message.get("body", b""))

    await app(login_scope(body), receive, send)
    return status, b"".join(chunks)


async def direct(app: ASGIApp, codes: List[str], concurrency: int) -> float:
    """Drive ``concurrency`` clients that call the ASGI app directly; return the rate."""
    pending = list(codes)

    async def client_loop() -> None:
        while pending:
            status, body = await call_login(app, pending.pop())
            if status != 200:
                raise RuntimeError(f"login failed: {status} {body[:200]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return len(codes) / (time.perf_counter() - started)


DRIVERS: Dict[str, Driver] = {"direct": direct, "httpx": via_httpx}
#: CPU ms per login of the last ``run_rounds``: {driver: {setup: [(app process, fake)]}}.
CPU_LOG: Dict[str, Dict[str, List[Tuple[float, float]]]] = {}
#: Where ``--client-settings`` records its figures (``run_all.py`` shows them).
CLIENT_SETTINGS_JSON = _bench.BENCH / "client_settings.json"


def setups(config: WxConfig, state: Path) -> Dict[str, ASGIApp]:
    return {
        "bare": bare_app(config),
        "memory": WxASGIMiddleware(not_found, config, store=AsyncMemoryStore()),
        "sqlite": WxASGIMiddleware(
            not_found, config, store=AsyncSQLiteStore(state / "logins.sqlite3")
        ),
    }


async def run_rounds(
    fake: _bench.FakeWeChatProcess,
    apps: Dict[str, ASGIApp],
    concurrency: int,
    per_client: int,
    rounds: int,
    drivers: List[str],
) -> Dict[str, Dict[str, List[float]]]:
    """``{driver: {setup: [rate per round]}}``; setups alternate within each round."""
    rates: Dict[str, Dict[str, List[float]]] = {d: {name: [] for name in apps} for d in drivers}
    cpu: Dict[str, Dict[str, List[Tuple[float, float]]]] = {
        d: {name: [] for name in apps} for d in drivers
    }
    assert fake.process is not None
    fake_pid = fake.process.pid
    for driver in drivers:
        for app in apps.values():  # warm up: connections to the fake, the database
            await DRIVERS[driver](app, fake.codes(concurrency), concurrency)
    names = list(apps)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for driver in drivers:
            for name in names[shift:] + names[:shift]:
                codes = fake.codes(concurrency * per_client)
                started = (time.process_time(), _bench.process_tree_cpu(fake_pid))
                rates[driver][name].append(await DRIVERS[driver](apps[name], codes, concurrency))
                ended = (time.process_time(), _bench.process_tree_cpu(fake_pid))
                cpu[driver][name].append(
                    (
                        1000 * (ended[0] - started[0]) / len(codes),
                        1000 * (ended[1] - started[1]) / len(codes),
                    )
                )
    CPU_LOG.clear()
    CPU_LOG.update(cpu)
    return rates


def measure(
    concurrency: int = 100,
    latency: float = 0.1,
    per_client: int = 5,
    rounds: int = 3,
    drivers: Tuple[str, ...] = ("direct", "httpx"),
) -> Dict[str, Any]:
    with _bench.FakeWeChatProcess(latency) as fake, tempfile.TemporaryDirectory() as state:
        config = WxConfig(appid=fake.appid, secret=fake.secret, api_base=fake.url)

        async def main() -> Dict[str, Dict[str, List[float]]]:
            apps = setups(config, Path(state))
            try:
                return await run_rounds(fake, apps, concurrency, per_client, rounds, list(drivers))
            finally:
                for app in apps.values():
                    store = getattr(app, "store", None)
                    if store is not None:
                        await store.close()

        rates = asyncio.run(main())
    ideal = concurrency / latency
    summary: Dict[str, Any] = {
        "concurrency": concurrency,
        "latency": latency,
        "ideal": ideal,
        "logins_per_round": concurrency * per_client,
        "rounds": rounds,
        "runs": rates,
    }
    cpu = dict(CPU_LOG)
    for driver, by_setup in rates.items():
        summary[driver] = {
            name: {
                "rate": _bench.median(values),
                "of_ideal": _bench.median(values) / ideal,
                "of_bare": _bench.median([v / b for v, b in zip(values, by_setup["bare"])]),
                "cpu_ms_app_process": _bench.median([c[0] for c in cpu[driver][name]]),
                "cpu_ms_fake": _bench.median([c[1] for c in cpu[driver][name]]),
            }
            for name, values in by_setup.items()
        }
    return summary


def client_settings() -> Dict[str, Callable[[WxConfig], AsyncWeChatClient]]:
    """Ways to build the jscode2session client; each is created inside the running loop."""
    timeout = httpx.Timeout(5.0, connect=2.0)

    def pooled(**options: Any) -> Callable[[WxConfig], AsyncWeChatClient]:
        def build(config: WxConfig) -> AsyncWeChatClient:
            return AsyncWeChatClient(config, http=httpx.AsyncClient(timeout=timeout, **options))

        return build

    def limits(connections: Optional[int], keepalive: Optional[int]) -> httpx.Limits:
        return httpx.Limits(max_connections=connections, max_keepalive_connections=keepalive)

    return {
        "a connection per request in flight (package default)": AsyncWeChatClient,
        "AsyncClient over that transport": pooled(transport=ExclusiveConnectionTransport()),
        "httpx pool, keep-alive 8 (the default before)": pooled(limits=limits(100, 8)),
        "httpx pool, keep-alive 8, trust_env=False": pooled(
            trust_env=False, limits=limits(100, 8)
        ),
        "httpx pool, keep-alive 20": pooled(limits=limits(100, 20)),
        "httpx pool, keep-alive 100": pooled(limits=limits(100, 100)),
        "httpx pool, keep-alive 100, http1 only, trust_env=False": lambda config: (
            AsyncWeChatClient(
                config,
                http=httpx.AsyncClient(
                    timeout=timeout,
                    trust_env=False,
                    transport=httpx.AsyncHTTPTransport(
                        http1=True, http2=False, limits=limits(100, 100)
                    ),
                ),
            )
        ),
        "httpx pool, no limits": pooled(limits=limits(None, None)),
    }


def measure_client_settings(
    concurrency: int = 100, latency: float = 0.1, logins: int = 500, rounds: int = 3
) -> Dict[str, Dict[str, float]]:
    """``{setting: {rate, cpu_ms, connects}}`` per login, medians over rounds."""
    import httpcore._backends.anyio as anyio_backend

    connects = [0]
    original = anyio_backend.AnyIOBackend.connect_tcp

    async def counting_connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        connects[0] += 1
        return await original(self, *args, **kwargs)

    anyio_backend.AnyIOBackend.connect_tcp = counting_connect  # type: ignore[method-assign]
    samples: Dict[str, List[Tuple[float, float, float]]] = {}
    try:
        with _bench.FakeWeChatProcess(latency) as fake:
            config = WxConfig(appid=fake.appid, secret=fake.secret, api_base=fake.url)

            async def main() -> None:
                for _ in range(rounds):
                    for name, build in client_settings().items():
                        client = build(config)
                        app = bare_app(config, client)
                        try:
                            await direct(app, fake.codes(concurrency), concurrency)
                            connects[0] = 0
                            cpu = time.process_time()
                            rate = await direct(app, fake.codes(logins), concurrency)
                            cpu = time.process_time() - cpu
                        except Exception as exc:  # a setting that times out is a result too
                            print(f"  {name}: {type(exc).__name__}: {exc}")
                            rate, cpu = float("nan"), float("nan")
                        samples.setdefault(name, []).append(
                            (rate, 1000 * cpu / logins, connects[0] / logins)
                        )
                        await client.aclose()
                        if client._http is not None:
                            await client._http.aclose()

            asyncio.run(main())
    finally:
        anyio_backend.AnyIOBackend.connect_tcp = original  # type: ignore[method-assign]
    return {
        name: {
            "rate": _bench.median([s[0] for s in values]),
            "cpu_ms": _bench.median([s[1] for s in values]),
            "connects": _bench.median([s[2] for s in values]),
        }
        for name, values in samples.items()
    }


def report(results: Dict[str, Any]) -> str:
    lines = [
        f"{results['concurrency']} concurrent logins, {results['logins_per_round']} per round x"
        f" {results['rounds']} rounds, WeChat latency {results['latency'] * 1000:.0f} ms:"
        f" ideal {results['ideal']:.0f} logins/s"
    ]
    for driver in DRIVERS:
        if driver not in results:
            continue
        lines.append(f"  driver: {driver}")
        for name, item in results[driver].items():
            lines.append(
                f"    {name:8} {item['rate']:6.0f} logins/s  {item['of_ideal']:.2f} of ideal"
                f"  {item['of_bare']:.2f} of bare;  CPU per login: this process"
                f" {item['cpu_ms_app_process']:.2f} ms, fake {item['cpu_ms_fake']:.2f} ms"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.1, help="fake WeChat latency (s)")
    parser.add_argument("--per-client", type=int, default=5, help="logins per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--driver", choices=[*DRIVERS, "both"], default="both")
    parser.add_argument(
        "--client-settings",
        action="store_true",
        help="compare jscode2session client settings instead",
    )
    args = parser.parse_args()
    if args.client_settings:
        with _bench.quiet_logging():
            settings = measure_client_settings(args.concurrency, args.latency, rounds=args.rounds)
        print(f"{'jscode2session client':56} {'logins/s':>9} {'CPU/login':>10} {'connects':>9}")
        for name, item in settings.items():
            print(f"{name:56} {item['rate']:9.0f} {item['cpu_ms']:8.2f}ms {item['connects']:9.2f}")
        record = {
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "concurrency": args.concurrency,
            "latency": args.latency,
            "settings": settings,
        }
        CLIENT_SETTINGS_JSON.write_text(json.dumps(record, indent=1))
        print(f"wrote {CLIENT_SETTINGS_JSON}")
        return
    drivers = tuple(DRIVERS) if args.driver == "both" else (args.driver,)
    with _bench.quiet_logging():
        results = measure(args.concurrency, args.latency, args.per_client, args.rounds, drivers)
    print(report(results))


if __name__ == "__main__":
    main()
