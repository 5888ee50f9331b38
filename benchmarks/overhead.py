"""Per-request overhead of the middleware, in process: no server, no network (but Redis's).

An authenticated ``GET /api/me`` with the headers of a real ``wx.request`` behind nginx
(``_bench.miniprogram_headers``: a dozen, the token in ``3rd-session`` last) goes straight
into the app: Flask's WSGI callable with a copy of a prebuilt environ, its body consumed and
closed as a server would; Starlette awaited in one event loop with a copy of a prebuilt
scope. The *bare* app answers the same JSON from a constant; the *wrapped* app reads the
openid the middleware attached, on each store (memory, SQLite, Redis on loopback), with a
token from a real login against the fake WeChat. The peers do the same work their way:
Flask, a ``before_request`` hook over a dict and Flask-Session on Redis; Starlette, its
``AuthenticationMiddleware`` with a dict backend and its ``SessionMiddleware`` (signed
cookie). The *floor* is a hand-written middleware doing only the unavoidable: find the token
header, look it up in a dict, attach the session (a scope copy for ASGI). Variants run once
per round, rounds interleaved; ratios are per round, then the median.

    python benchmarks/overhead.py --stores memory --no-peers
    python benchmarks/overhead.py --stores memory --against wxold   # A/B against a copy

``--against`` names importable copies of another checkout's package (``git archive <commit>
wxmiddleware | tar -x -C /tmp/old``, renamed and its absolute imports rewritten, on
``PYTHONPATH``): their memory store runs in the same rounds. ``--stores`` also takes SQL store
URLs (tables ``wxbench_*``), e.g. ``--stores sqlite,redis,postgresql://postgres@127.0.0.1/test``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import _bench
import report
from _bench import OPENID, TOKEN_HEADER, UNIONID

import wxmiddleware
from wxmiddleware import WxSession
from wxmiddleware.asgi import WxUser
from wxmiddleware.testing import FakeWeChat

STORES = ("memory", "sqlite", "redis")


def flask_apps() -> Tuple[Any, Any]:
    """``(bare, inner)``: the bare app answers a constant; ``inner`` reads the environ."""
    from flask import Flask, jsonify, request

    bare, inner = Flask("bare"), Flask("wrapped")
    bare.get("/api/me")(lambda: jsonify(openid=OPENID, unionid=UNIONID))

    @inner.get("/api/me")
    def me() -> Any:
        env = request.environ
        return jsonify(openid=env["wxmiddleware.openid"], unionid=env["wxmiddleware.unionid"])

    return bare, inner


def starlette_apps() -> Tuple[Any, Any]:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def bare_me(request: Any) -> JSONResponse:
        return JSONResponse({"openid": OPENID, "unionid": UNIONID})

    async def me(request: Any) -> JSONResponse:
        unionid = request.scope["wxmiddleware.unionid"]
        return JSONResponse({"openid": request.user.identity, "unionid": unionid})

    return Starlette(routes=[Route("/api/me", bare_me)]), Starlette(routes=[Route("/api/me", me)])


# The peers and the floor look the token up in a dict: {token: WxSession}.
Sessions = Dict[str, WxSession]


def flask_hook_peer(sessions: Sessions) -> Any:
    """The hand-written Flask way: a ``before_request`` hook reads the header, looks the
    token up in a dict and puts the user in ``g``."""
    from flask import Flask, abort, g, jsonify, request

    app = Flask("hook_peer")

    @app.before_request
    def authenticate() -> None:
        session = sessions.get(request.headers.get(TOKEN_HEADER, ""))
        if session is None:
            abort(401)
        g.session = session

    app.get("/api/me")(lambda: jsonify(openid=g.session.openid, unionid=g.session.unionid))
    return app


def flask_session_peer(redis_url: str, prefix: str) -> Tuple[Any, List[Tuple[str, str]]]:
    """Flask-Session on Redis, and the cookie header of a session holding the openid."""
    import redis
    from flask import Flask, jsonify, session
    from flask_session import Session

    app = Flask("flask_session_peer")
    app.config.update(
        SECRET_KEY="bench-secret-key", SESSION_TYPE="redis",
        SESSION_REDIS=redis.Redis.from_url(redis_url), SESSION_KEY_PREFIX=prefix + "fs:",
    )
    Session(app)
    app.get("/api/me")(lambda: jsonify(openid=session["openid"], unionid=session.get("unionid")))

    @app.post("/login")
    def login() -> Any:
        session.update(openid=OPENID, unionid=UNIONID)
        return jsonify(ok=True)

    cookie = app.test_client().post("/login").headers["Set-Cookie"].split(";", 1)[0]
    return app, [("Cookie", cookie)]


def wsgi_floor(app: Any, sessions: Sessions) -> Any:
    """The least a WSGI login middleware does: environ key -> dict -> environ keys."""

    def floor(environ: Dict[str, Any], start_response: Any) -> Any:
        session = sessions.get(environ.get("HTTP_3RD_SESSION", ""))
        if session is None:
            start_response("401 Unauthorized", [])
            return [b""]
        environ["wxmiddleware.session"] = session
        environ["wxmiddleware.openid"] = environ["REMOTE_USER"] = session.openid
        environ["wxmiddleware.unionid"] = session.unionid
        return app(environ, start_response)

    return floor


def starlette_auth_peer(sessions: Sessions) -> Any:
    """Starlette's own ``AuthenticationMiddleware`` with a backend reading a dict."""
    from starlette.applications import Starlette
    from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    class Backend(AuthenticationBackend):
        async def authenticate(self, conn: Any) -> Any:
            session = sessions.get(conn.headers.get(TOKEN_HEADER, ""))
            if session is None:
                return None  # anonymous: the route would refuse it
            return AuthCredentials(["authenticated"]), SimpleUser(session.openid)

    async def me(request: Any) -> JSONResponse:
        return JSONResponse({"openid": request.user.identity, "unionid": UNIONID})

    middleware = [Middleware(AuthenticationMiddleware, backend=Backend())]
    return Starlette(routes=[Route("/api/me", me)], middleware=middleware)


def starlette_session_peer() -> Tuple[Any, List[Tuple[str, str]]]:
    """Starlette's SessionMiddleware (signed cookie), and a cookie holding the openid."""
    import itsdangerous
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def me(request: Any) -> JSONResponse:
        session = request.session
        return JSONResponse({"openid": session["openid"], "unionid": session.get("unionid")})

    secret = "bench-secret-key"
    middleware = [Middleware(SessionMiddleware, secret_key=secret)]
    app = Starlette(routes=[Route("/api/me", me)], middleware=middleware)
    data = base64.b64encode(json.dumps({"openid": OPENID, "unionid": UNIONID}).encode())
    signed = itsdangerous.TimestampSigner(secret).sign(data).decode()
    return app, [("Cookie", f"session={signed}")]


def asgi_floor(app: Any, sessions: Sessions) -> Any:
    """The least an ASGI login middleware does: one pass over the headers for the token, a
    dict lookup, a scope copy with the keys and ``user`` the route reads."""
    token_name = TOKEN_HEADER.encode()

    async def floor(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        token = next((v for n, v in scope["headers"] if n == token_name), b"").decode()
        session = sessions.get(token)
        if session is None:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        scope = scope.copy()
        scope["wxmiddleware.session"] = session
        scope["wxmiddleware.openid"] = session.openid
        scope["wxmiddleware.unionid"] = session.unionid
        scope["user"] = WxUser(session)
        await app(scope, receive, send)

    return floor


def check(status: int, body: bytes) -> None:
    """The answer carries an openid (the wrapped route read it from the session)."""
    if status != 200 or not json.loads(body).get("openid"):
        raise RuntimeError(f"unexpected answer {status}: {body[:200]!r}")


def wsgi_runner(app: Any, env: Dict[str, Any]) -> Callable[[int], float]:
    check(*_bench.call_wsgi(app, env.copy()))  # check the answer before timing it

    def start_response(line: str, headers: Any, exc_info: Any = None) -> None:
        return None

    def run(n: int) -> float:
        copy = env.copy
        started = time.perf_counter()
        for _ in range(n):
            result = app(copy(), start_response)
            for _chunk in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return time.perf_counter() - started

    return run


def asgi_runner(
    loop: asyncio.AbstractEventLoop, app: Any, asgi_scope: Dict[str, Any]
) -> Callable[[int], float]:
    check(*loop.run_until_complete(_bench.call_asgi(app, dict(asgi_scope))))
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> Dict[str, Any]:
        return request

    async def send(message: Dict[str, Any]) -> None:
        pass

    async def many(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await app(dict(asgi_scope), receive, send)
        return time.perf_counter() - started

    return lambda n: loop.run_until_complete(many(n))


def make_store(
    kind: str, asynchronous: bool, wx: Any, state: Path, redis_url: str, prefix: str
) -> Any:
    """A store of ``kind`` from the package ``wx``."""
    if kind == "memory":
        return wx.AsyncMemoryStore() if asynchronous else wx.MemoryStore()
    if kind == "sqlite":
        path = state / f"{asynchronous}-{secrets.token_hex(4)}.sqlite3"
        return wx.AsyncSQLiteStore(path) if asynchronous else wx.SQLiteStore(path)
    if "://" in kind:  # a SQL store URL
        from wxmiddleware.stores import sql_stores

        sql = sql_stores()
        store_class = sql.AsyncSQLStore if asynchronous else sql.SQLStore
        return store_class.from_url(kind, table_prefix="wxbench_")
    redis_store = wx.AsyncRedisStore if asynchronous else wx.RedisStore
    return redis_store.from_url(redis_url, key_prefix=prefix)


#: The peer each framework's goal names (RESULTS.md, *Goals*).
PEERS = {"flask": "hook_peer", "starlette": "auth_peer"}


def summary(times: Dict[str, List[float]], peer: str) -> Dict[str, Any]:
    others = [name for name in times if name != "bare"]
    result: Dict[str, Any] = {
        "us_per_request": {name: 1e6 * _bench.median(values) for name, values in times.items()},
        "ratio_vs_bare": {name: _bench.ratio(times, name, "bare") for name in others},
        "cost_us": {name: 1e6 * _bench.cost(times, name, "bare") for name in others},
    }
    if peer in times:
        result["vs_peer"] = {name: _bench.ratio(times, name, peer) for name in others}
    if "sqlite" in times and "memory" in times:
        result["sqlite_vs_memory"] = _bench.ratio(times, "sqlite", "memory")
    return {**result, "times": times}


def measure_framework(
    name: str, fake: FakeWeChat, stores: Sequence[str], peers: bool, rounds: int, requests: int,
    metrics: bool = False, against: Sequence[str] = (), **kw: Any,
) -> Dict[str, Any]:
    """One framework, alternating: the bare app; the wrapped app on each store (and on the
    first with Prometheus metrics on, and the memory store with each package of
    ``against``); the peers; the floor."""
    loop, wsgi = asyncio.new_event_loop(), name == "flask"
    apps = flask_apps if wsgi else starlette_apps
    options = {"appid": fake.appid, "secret": fake.secret, "public_paths": ("/health",)}

    def runner(app: Any, token: Optional[str] = None, **headers: Any) -> Callable[[int], float]:
        if wsgi:
            return wsgi_runner(app, _bench.environ(token, **headers))
        return asgi_runner(loop, app, _bench.scope(token, **headers))

    def wrapped(kind: str, package: Any = wxmiddleware, **more: Any) -> Callable[[int], float]:
        opened.append(make_store(kind, not wsgi, package, **kw))
        inner, code = apps()[1], fake.issue_code(f"{name}-{len(opened)}")
        config = package.WxConfig(api_base=fake.url, **options)
        if wsgi:
            app = package.WxMiddleware(inner.wsgi_app, config=config, store=opened[-1], **more)
            return runner(app, _bench.wsgi_login(app, code))
        app = package.WxASGIMiddleware(inner, config=config, store=opened[-1], **more)
        return runner(app, loop.run_until_complete(_bench.asgi_login(app, code)))

    variants, opened = {"bare": runner(apps()[0])}, []
    try:
        for kind in stores:
            variants[kind] = wrapped(kind)
        if metrics:  # the first store again, with Prometheus metrics on (its own registry)
            from prometheus_client import CollectorRegistry

            from wxmiddleware.observers.prometheus import PrometheusObserver

            observers = [PrometheusObserver(CollectorRegistry())]
            variants[f"{stores[0]}, metrics on"] = wrapped(stores[0], observers=observers)
        for package_name in against:
            package = importlib.import_module(package_name)
            variants[f"memory, {package_name}"] = wrapped("memory", package)
        token = secrets.token_urlsafe(32)
        sessions = {token: WxSession(OPENID, "key", UNIONID, time.time(), time.time() + 7200)}
        if peers and wsgi:
            variants["hook_peer"] = runner(flask_hook_peer(sessions), token)
            if "redis" in stores:
                peer, cookie = flask_session_peer(kw["redis_url"], kw["prefix"])
                variants["flask_session_redis"] = runner(peer, headers=cookie)
        if peers and not wsgi:
            variants["auth_peer"] = runner(starlette_auth_peer(sessions), token)
            peer, cookie = starlette_session_peer()
            variants["starlette_session"] = runner(peer, headers=cookie)
        inner = apps()[1]
        floor = wsgi_floor(inner.wsgi_app, sessions) if wsgi else asgi_floor(inner, sessions)
        variants["floor"] = runner(floor, token)
        return summary(_bench.alternate(variants, requests, rounds), PEERS[name])
    finally:
        for store in opened:
            loop.run_until_complete(_bench.aclose(store))
        loop.close()


def measure(
    rounds: int = 60, requests: int = 150, redis_url: Optional[str] = None,
    frameworks: Sequence[str] = ("flask", "starlette"), stores: Sequence[str] = STORES,
    peers: bool = True, metrics: bool = False, against: Sequence[str] = (),
) -> Dict[str, Any]:
    """Both frameworks: times per round, the ratios to the bare app and the µs added."""
    stores = [s for s in stores if s != "redis" or redis_url]
    results: Dict[str, Any] = {"requests_per_round": requests, "rounds": rounds}
    prefix = f"wxbench-{secrets.token_hex(4)}:"  # our keys, deleted at the end
    with tempfile.TemporaryDirectory() as state, FakeWeChat() as fake:
        kw = {"state": Path(state), "redis_url": redis_url, "prefix": prefix}
        for name in frameworks:
            results[name] = measure_framework(
                name, fake, stores, peers, rounds, requests, metrics, against, **kw
            )
    if redis_url:
        import redis

        with contextlib.closing(redis.Redis.from_url(redis_url)) as client:
            client.delete(*client.keys(prefix + "*") or [prefix])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--requests", type=int, default=150, help="requests per round")
    parser.add_argument("--frameworks", default="flask,starlette")
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--no-peers", action="store_true", help="skip the peers' variants")
    parser.add_argument("--redis-url", help="use this Redis instead of a private server")
    parser.add_argument(
        "--metrics", action="store_true", help="also the first store with Prometheus metrics on"
    )
    parser.add_argument(
        "--against", default="", help="also the memory store of these packages (comma-separated"
        " importable names: a renamed copy of another checkout's wxmiddleware)",
    )
    args = parser.parse_args()
    stores, frameworks = args.stores.split(","), args.frameworks.split(",")
    with _bench.quiet_logging(), contextlib.ExitStack() as stack:
        url = args.redis_url
        if url is None and "redis" in stores and _bench.PrivateRedis.available:
            url = stack.enter_context(_bench.PrivateRedis()).url
        against = [name for name in args.against.split(",") if name]
        results = measure(
            args.rounds, args.requests, url, frameworks, stores, not args.no_peers, args.metrics,
            against,
        )
    print(f"{args.requests} requests per round, {args.rounds} rounds; medians of per-round figures")
    print(report.overhead_tables(results))
    print(report.goals_text({"overhead": results}))


if __name__ == "__main__":
    main()
