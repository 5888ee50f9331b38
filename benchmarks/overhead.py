"""Per-request overhead of the middleware in process (no server, no network but Redis's), and
the Redis commands a request costs (RESULTS.md says what runs; the apps are in ``apps.py`` and
``django_apps.py``): ``python benchmarks/overhead.py --stores memory --no-peers``. For Flask
and Starlette, ``--against wxold`` runs the memory store of importable copies of another
checkout's package (``git archive <commit> wxmiddleware | tar -x -C /tmp/old``, renamed and its
absolute imports rewritten, on ``PYTHONPATH``) in the same rounds, ``--stores`` also takes SQL
store URLs (tables ``wxbench_*``), e.g. ``sqlite,redis,postgresql://postgres@127.0.0.1/test``,
and ``--metrics`` adds the first store again with Prometheus metrics on.
"""

import argparse
import asyncio
import contextlib
import dataclasses
import importlib
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import _bench
import apps
import redis
import report
from _bench import Request

import wxmiddleware
from wxmiddleware import AsyncRedisStore, RedisStore, WxASGIMiddleware, WxMiddleware

STORES = ("memory", "sqlite", "redis")
#: Each framework's peer (*vs the peer*; for Flask and Starlette, the one their goal names).
PEERS = {"flask": "hook_peer", "starlette": "auth_peer", "django": "remote_user_peer"}
#: The prefix of our Redis keys (deleted at the end).
PREFIX = f"wxbench-{secrets.token_hex(4)}:"


@dataclasses.dataclass
class Options:
    rounds: int = 60
    requests: int = 150  # per round
    frameworks: Sequence[str] = ("flask", "starlette", "django")
    stores: Sequence[str] = STORES
    peers: bool = True
    metrics: bool = False
    against: Sequence[str] = ()


def request_timer(app: Any, request: Request, loop: Any, requests: int) -> Callable[[], float]:
    """Seconds per request over ``requests`` in a row: a WSGI app called with a copy of the
    request's environ, its body consumed and closed as a server would; given the event
    ``loop``, an ASGI app awaited with a copy of its scope."""
    env, scope = request.environ(), request.scope()
    message = {"type": "http.request", "body": b"", "more_body": False}

    def start_response(line: str, headers: Any, exc_info: Any = None) -> None:
        return None

    async def receive() -> Dict[str, Any]:
        return message

    async def send(message: Dict[str, Any]) -> None:
        pass

    def run() -> float:
        copy, started = env.copy, time.perf_counter()
        for _ in range(requests):
            result = app(copy(), start_response)
            for _chunk in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return (time.perf_counter() - started) / requests

    async def many() -> float:
        started = time.perf_counter()
        for _ in range(requests):
            await app(dict(scope), receive, send)
        return (time.perf_counter() - started) / requests

    return run if loop is None else lambda: loop.run_until_complete(many())


def make_store(kind: str, asynchronous: bool, wx: Any, state: Path, redis_url: str) -> Any:
    """A store of ``kind`` from the package ``wx``, in ``state``, keys and tables our own."""
    if kind == "memory":
        return wx.AsyncMemoryStore() if asynchronous else wx.MemoryStore()
    if kind == "sqlite":
        path = state / f"{asynchronous}-{secrets.token_hex(4)}.sqlite3"
        return wx.AsyncSQLiteStore(path) if asynchronous else wx.SQLiteStore(path)
    if "://" in kind:  # a SQL store URL
        sql = wxmiddleware.stores.sql_stores()
        store_class = sql.AsyncSQLStore if asynchronous else sql.SQLStore
        return store_class.from_url(kind, table_prefix="wxbench_")
    redis_store = wx.AsyncRedisStore if asynchronous else wx.RedisStore
    return redis_store.from_url(redis_url, key_prefix=PREFIX)


def summary(times: Dict[str, List[float]], peer: str) -> Dict[str, Any]:
    others = [name for name in times if name != "bare"]
    cost = {name: [v - b for v, b in zip(times[name], times["bare"])] for name in others}
    result: Dict[str, Any] = {
        "us_per_request": {name: 1e6 * _bench.median(values) for name, values in times.items()},
        "ratio_vs_bare": {name: _bench.ratio(times, "bare", name) for name in others},
        "cost_us": {name: 1e6 * _bench.median(values) for name, values in cost.items()},
    }
    if peer in times:
        result["vs_peer"] = {name: _bench.ratio(times, peer, name) for name in others}
    if "sqlite" in times and "memory" in times:
        result["sqlite_vs_memory"] = _bench.ratio(times, "memory", "sqlite")
        result["floor_sqlite_vs_memory"] = _bench.ratio(times, "floor", "floor_sqlite")
    return {**result, "times": times}


def measure_framework(
    framework: str, options: Options, fake: Any, state: Path, redis_url: str
) -> Dict[str, Any]:
    """One framework, interleaved: the bare app; the wrapped app on each store (and, for Flask
    and Starlette, on the first with metrics and each package ``against``'s); peers; floors."""
    loop, wsgi, opened = asyncio.new_event_loop(), framework != "starlette", []
    django = importlib.import_module("django_apps") if framework == "django" else None
    app_of = django.app if django else apps.flask_app if wsgi else apps.starlette_app
    asgi_loop = None if wsgi else loop
    config = dict(appid=fake.appid, secret=fake.secret, api_base=fake.url, public_paths=["/health"])

    def inner() -> Any:  # the wrapped app, for a middleware to wrap
        app = app_of(True)
        return getattr(app, "wsgi_app", app)

    def timer(app: Any, request: Request) -> Callable[[], float]:
        status, body = request.answer(app, asgi_loop)  # the answer is right before it is timed
        if status != 200 or not json.loads(body).get("openid"):
            raise RuntimeError(f"unexpected answer {status}: {body[:200]!r}")
        return request_timer(app, request, asgi_loop, options.requests)

    def wrapped(kind: str, wx: Any = wxmiddleware, **more: Any) -> Callable[[], float]:
        if django:  # as a Django project sets it: WXMIDDLEWARE, the store by its URL
            urls = {"memory": "memory://", "sqlite": f"sqlite:///{state}/django.sqlite3"}
            app = django.app(True, {**config, "store": urls.get(kind, redis_url)})
        else:
            opened.append(make_store(kind, not wsgi, wx, state, redis_url))
            middleware = wx.WxMiddleware if wsgi else wx.WxASGIMiddleware
            app = middleware(inner(), config=wx.WxConfig(**config), store=opened[-1], **more)
        token = _bench.token_of(*Request.login(fake.codes(1)[0]).answer(app, asgi_loop))
        return timer(app, Request(token))

    variants = {"bare": timer(app_of(False), Request())}
    try:
        for kind in options.stores:
            if not (django and "://" in kind):  # a SQL URL names no table prefix of ours
                variants[kind.split("://")[0]] = wrapped(kind)  # a URL's dots split paths
        if options.metrics and not django:  # with a registry of its own
            from prometheus_client import CollectorRegistry

            from wxmiddleware.observers.prometheus import PrometheusObserver

            first, observers = options.stores[0], [PrometheusObserver(CollectorRegistry())]
            variants[f"{first}, metrics on"] = wrapped(first, observers=observers)
        for package_name in () if django else options.against:
            package = importlib.import_module(package_name)
            variants[f"memory, {package_name}"] = wrapped("memory", package)
        token = secrets.token_urlsafe(32)
        find = apps.session_finder("memory://", token)  # a dict's get
        if options.peers and django:
            variants["remote_user_peer"] = timer(django.remote_user_peer(find), Request(token))
        if options.peers and framework == "flask":
            variants["hook_peer"] = timer(apps.flask_hook_peer(find), Request(token))
            if "redis" in options.stores:
                peer, cookie = apps.flask_session_peer(redis_url, PREFIX + "fs:")
                variants["flask_session_redis"] = timer(peer, Request(headers=cookie))
        if options.peers and not wsgi:
            variants["auth_peer"] = timer(apps.starlette_auth_peer(find), Request(token))
            peer, cookie = apps.starlette_session_peer()
            variants["starlette_session"] = timer(peer, Request(headers=cookie))
        floor = apps.wsgi_floor if wsgi else apps.asgi_floor
        variants["floor"] = timer(floor(inner(), find), Request(token))
        find_row = apps.session_finder(f"sqlite:///{state}/floor-{framework}.db", token)
        variants["floor_sqlite"] = timer(floor(inner(), find_row), Request(token))
        return summary(_bench.interleaved(variants, options.rounds), PEERS[framework])
    finally:
        for store in opened:
            loop.run_until_complete(_bench.aclose(store))
        loop.run_until_complete(loop.shutdown_asyncgens())  # closes the WeChat clients' sessions
        loop.close()


def measure(options: Options, redis_url: Optional[str] = None) -> Dict[str, Any]:
    """Each framework: seconds per request per round, ratios to the bare app, µs added."""
    stores = [s for s in options.stores if s != "redis" or redis_url]
    options = dataclasses.replace(options, stores=stores)
    results: Dict[str, Any] = {"requests_per_round": options.requests, "rounds": options.rounds}
    with tempfile.TemporaryDirectory() as state, _bench.FakeWeChatProcess() as fake:
        for name in options.frameworks:
            results[name] = measure_framework(name, options, fake, Path(state), redis_url or "")
    if redis_url:
        with contextlib.closing(redis.Redis.from_url(redis_url)) as client:
            client.delete(*client.keys(PREFIX + "*") or [PREFIX])
    return results


def redis_commands(redis_url: str, requests: int = 200, logins: int = 50) -> Dict[str, Any]:
    """Redis commands per authenticated request, login and logout, and per request of the
    Flask-Session peer, as ``INFO commandstats`` deltas (connections opened beforehand)."""
    admin, loop, results = redis.Redis.from_url(redis_url), asyncio.new_event_loop(), {}

    def count(name: str, app: Any, batch: List[Request], status: int = 200) -> List[bytes]:
        """Make the requests; record the commands they sent, per request; return the bodies."""
        before = admin.info("commandstats")
        asgi_loop = loop if isinstance(app, WxASGIMiddleware) else None
        answers = [request.answer(app, asgi_loop) for request in batch]
        after = admin.info("commandstats")
        assert {code for code, _ in answers} == {status}, answers[:1]
        start = {key: item["calls"] for key, item in before.items()}
        delta = {k[8:]: v["calls"] - start.get(k, 0) for k, v in after.items()}  # k: cmdstat_*
        delta["info"] -= 1  # the INFO itself
        used = {command: n / len(batch) for command, n in sorted(delta.items()) if n}
        results[name] = {"commands": used, "total": sum(used.values())}
        return [body for _, body in answers]

    with _bench.FakeWeChatProcess() as fake:
        codes, config = fake.codes(logins + 2), fake.config()
        store = RedisStore.from_url(redis_url)
        wsgi = WxMiddleware(apps.plain_wsgi, config=config, store=store)
        me = Request(_bench.token_of(*Request.login(codes.pop()).to_wsgi(wsgi)))
        me.to_wsgi(wsgi)  # opens the connection
        count("wsgi_request", wsgi, [me] * requests)
        bodies = count("wsgi_login", wsgi, [Request.login(code) for code in codes[1:]])
        logouts = [Request(_bench.token_of(200, body), "POST", "/wx/logout") for body in bodies]
        count("wsgi_logout", wsgi, logouts, status=204)
        store.close()
        async_store = AsyncRedisStore.from_url(redis_url)
        asgi = WxASGIMiddleware(apps.plain_asgi, config=config, store=async_store)
        me = Request(_bench.token_of(*Request.login(codes[0]).answer(asgi, loop)))
        me.answer(asgi, loop)
        count("asgi_request", asgi, [me] * requests)
        loop.run_until_complete(_bench.aclose(async_store))
        loop.close()
        peer, cookie = apps.flask_session_peer(redis_url, PREFIX + "fs:")
        Request(headers=cookie).to_wsgi(peer)
        count("flask_session_request", peer, [Request(headers=cookie)] * requests)
    admin.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names: Dict[str, Any] = {"type": lambda text: text.split(",")}  # comma-separated
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--requests", type=int, default=150, help="requests per round")
    parser.add_argument("--frameworks", **names, default=Options.frameworks)
    parser.add_argument("--stores", **names, default=STORES)
    parser.add_argument("--no-peers", dest="peers", action="store_false", help="no peers")
    parser.add_argument("--metrics", action="store_true", help="the first store with metrics on")
    parser.add_argument("--against", **names, default=(), help="packages to run alongside")
    args = vars(parser.parse_args())
    with _bench.private_redis("redis" in args["stores"]) as redis_url:
        results = measure(Options(**args), redis_url)
    print(f"{args['requests']} requests per round, {args['rounds']} rounds; per-round medians")
    print(report.overhead_table(results))


if __name__ == "__main__":
    main()
