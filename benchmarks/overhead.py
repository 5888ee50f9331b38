"""Per-request overhead of the middleware, in process: no server, no network (but Redis's).

An authenticated ``GET /api/me`` is sent straight into the app, many times:

- Flask: the WSGI app is called with a copy of a prebuilt environ, its body consumed and
  closed, as a WSGI server would;
- Starlette: the ASGI app is awaited in one event loop with a copy of a prebuilt scope and
  trivial ``receive``/``send``.

For each framework, the *bare* app has the same route, which answers the same JSON from a
constant; the *wrapped* app is ``WxMiddleware``/``WxASGIMiddleware`` in front of a route
that reads the openid the middleware put into the environ (``request.user`` in Starlette),
on each store: memory, SQLite (the default) and Redis on loopback. Peers do the equivalent
work (resolve a session, expose a user id) on the same route:

- Starlette's ``SessionMiddleware`` (a signed cookie; the route reads
  ``request.session["openid"]``);
- Flask-Session on Redis (``SESSION_TYPE="redis"``; the route reads ``session["openid"]``).

Every variant of a framework runs once per round, rounds interleaved; ratios are per round,
then the median. Run: ``python benchmarks/overhead.py [--rounds 60] [--requests 150]``
(a Redis server is started on a free port for the Redis variants, or give ``--redis-url``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import _bench
from _bench import alternate, cost, ratio

from wxmiddleware import (
    AsyncMemoryStore,
    AsyncSQLiteStore,
    MemoryStore,
    SQLiteStore,
    WxASGIMiddleware,
    WxConfig,
    WxMiddleware,
)
from wxmiddleware.session import WxSession, new_token

IDLE = 7200
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
UNIONID = "o6_bmasdasdsad6_2sgVt7hMZOPfL"
CONFIG = WxConfig(appid="wx0123456789abcdef", secret="bench-secret", public_paths=("/health",))


def new_session() -> WxSession:
    now = time.time()
    return WxSession(OPENID, "tiihtNczf5v6AKRyjwEUhQ==", UNIONID, now, now + 30 * 86400)


# --- Flask -------------------------------------------------------------------------------


def flask_apps() -> Tuple[Any, Any]:
    """``(bare, inner)``: the bare app answers a constant; ``inner`` reads the environ."""
    from flask import Flask, jsonify, request

    bare = Flask("bare")

    @bare.get("/api/me")
    def bare_me() -> Any:
        return jsonify(openid=OPENID, unionid=UNIONID)

    inner = Flask("wrapped")

    @inner.get("/api/me")
    def me() -> Any:
        return jsonify(
            openid=request.environ["wxmiddleware.openid"],
            unionid=request.environ["wxmiddleware.unionid"],
        )

    return bare, inner


def wrap_flask(store: Any) -> Any:
    _, inner = flask_apps()
    inner.wsgi_app = WxMiddleware(inner.wsgi_app, config=CONFIG, store=store)
    return inner


def flask_environ(headers: Dict[str, str]) -> Dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/api/me",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench",
        "HTTP_ACCEPT": "*/*",
        "RAW_URI": "/api/me",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def wsgi_runner(app: Any, environ: Dict[str, Any]) -> Callable[[int], float]:
    status: List[str] = []

    def start_response(line: str, headers: Any, exc_info: Any = None) -> Any:
        status.append(line)
        return None

    # Check the answer once before timing it.
    body = b"".join(app(environ.copy(), start_response))
    if not status[-1].startswith("200") or OPENID.encode() not in body:
        raise RuntimeError(f"unexpected answer {status[-1]}: {body[:200]!r}")

    def run(n: int) -> float:
        copy = environ.copy
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


def flask_session_app(redis_client: Any, prefix: str) -> Tuple[Any, str]:
    """Flask-Session on Redis, and the cookie of a session holding the openid."""
    from flask import Flask, jsonify, session
    from flask_session import Session

    app = Flask("flask_session_peer")
    app.config.update(
        SECRET_KEY="bench-secret-key",
        SESSION_TYPE="redis",
        SESSION_REDIS=redis_client,
        SESSION_KEY_PREFIX=prefix + "fs:",
    )
    Session(app)

    @app.get("/api/me")
    def me() -> Any:
        return jsonify(openid=session["openid"], unionid=session.get("unionid"))

    @app.post("/login")
    def login() -> Any:
        session["openid"] = OPENID
        session["unionid"] = UNIONID
        return jsonify(ok=True)

    answer = app.test_client().post("/login")
    cookie = answer.headers["Set-Cookie"].split(";", 1)[0]
    return app, cookie


# --- Starlette ---------------------------------------------------------------------------


def starlette_apps() -> Tuple[Any, Any]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def bare_me(request: Request) -> JSONResponse:
        return JSONResponse({"openid": OPENID, "unionid": UNIONID})

    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"openid": request.user.identity, "unionid": request.user.unionid})

    return Starlette(routes=[Route("/api/me", bare_me)]), Starlette(routes=[Route("/api/me", me)])


def wrap_starlette(store: Any) -> Any:
    _, inner = starlette_apps()
    return WxASGIMiddleware(inner, config=CONFIG, store=store)


def starlette_session_app() -> Tuple[Any, str]:
    """Starlette's SessionMiddleware (signed cookie), and a cookie holding the openid."""
    import itsdangerous
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    secret = "bench-secret-key"

    async def me(request: Request) -> JSONResponse:
        return JSONResponse(
            {"openid": request.session["openid"], "unionid": request.session.get("unionid")}
        )

    app = Starlette(
        routes=[Route("/api/me", me)],
        middleware=[Middleware(SessionMiddleware, secret_key=secret)],
    )
    data = base64.b64encode(json.dumps({"openid": OPENID, "unionid": UNIONID}).encode())
    signed = itsdangerous.TimestampSigner(secret).sign(data).decode()
    return app, f"session={signed}"


def asgi_scope(headers: Dict[str, str]) -> Dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/me",
        "raw_path": b"/api/me",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"bench"),
            (b"accept", b"*/*"),
            *((name.lower().encode(), value.encode()) for name, value in headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


def asgi_runner(
    loop: asyncio.AbstractEventLoop, app: Any, scope: Dict[str, Any]
) -> Callable[[int], float]:
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> Dict[str, Any]:
        return request

    messages: List[Dict[str, Any]] = []

    async def keep(message: Dict[str, Any]) -> None:
        messages.append(message)

    async def send(message: Dict[str, Any]) -> None:
        pass

    loop.run_until_complete(app(dict(scope), receive, keep))
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    if messages[0]["status"] != 200 or OPENID.encode() not in body:
        raise RuntimeError(f"unexpected answer {messages[0]['status']}: {body[:200]!r}")

    async def many(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await app(dict(scope), receive, send)
        return time.perf_counter() - started

    def run(n: int) -> float:
        return loop.run_until_complete(many(n))

    return run


# --- the measurement ---------------------------------------------------------------------


def measure(
    rounds: int = 60,
    requests: int = 150,
    redis_url: Optional[str] = None,
    state: Optional[Path] = None,
) -> Dict[str, Any]:
    """Run both frameworks; return times per round and the derived ratios and costs."""
    tmp = None
    if state is None:
        tmp = tempfile.TemporaryDirectory()
        state = Path(tmp.name)
    results: Dict[str, Any] = {"requests_per_round": requests, "rounds": rounds}
    try:
        results["flask"] = measure_flask(rounds, requests, redis_url, state)
        results["starlette"] = measure_starlette(rounds, requests, redis_url, state)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return results


def _summary(times: Dict[str, List[float]]) -> Dict[str, Any]:
    summary: Dict[str, Any] = {
        "us_per_request": {name: 1e6 * _bench.median(values) for name, values in times.items()},
        "ratio_vs_bare": {name: ratio(times, name, "bare") for name in times if name != "bare"},
        "cost_us": {name: 1e6 * cost(times, name, "bare") for name in times if name != "bare"},
    }
    if "sqlite" in times and "memory" in times:
        summary["sqlite_vs_memory"] = ratio(times, "sqlite", "memory")
    summary["times"] = times
    return summary


def measure_flask(
    rounds: int, requests: int, redis_url: Optional[str], state: Path
) -> Dict[str, Any]:
    token = new_token()
    bare, _ = flask_apps()
    memory = MemoryStore()
    memory.save(token, new_session(), IDLE)
    sqlite = SQLiteStore(state / "flask.sqlite3")
    sqlite.save(token, new_session(), IDLE)
    headers = {"3rd-session": token}
    variants = {
        "bare": wsgi_runner(bare, flask_environ({})),
        "memory": wsgi_runner(wrap_flask(memory), flask_environ(headers)),
        "sqlite": wsgi_runner(wrap_flask(sqlite), flask_environ(headers)),
    }
    cleanup: List[Callable[[], None]] = [sqlite.close]
    if redis_url:
        import redis

        from wxmiddleware.stores.redis import RedisStore

        prefix = _bench.bench_prefix()
        client = redis.Redis.from_url(redis_url)
        store = RedisStore(client, key_prefix=prefix)
        store.save(token, new_session(), IDLE)
        variants["redis"] = wsgi_runner(wrap_flask(store), flask_environ(headers))
        peer, cookie = flask_session_app(redis.Redis.from_url(redis_url), prefix)
        variants["flask_session_redis"] = wsgi_runner(peer, flask_environ({"Cookie": cookie}))
        cleanup.append(lambda: _bench.delete_prefixed(client, prefix))
    try:
        times = alternate(variants, requests, rounds)
    finally:
        for step in cleanup:
            step()
    return _summary(times)


def measure_starlette(
    rounds: int, requests: int, redis_url: Optional[str], state: Path
) -> Dict[str, Any]:
    token = new_token()
    headers = {"3rd-session": token}
    loop = asyncio.new_event_loop()
    try:
        bare, _ = starlette_apps()
        memory = AsyncMemoryStore()
        sqlite = AsyncSQLiteStore(state / "starlette.sqlite3")
        stores: Dict[str, Any] = {"memory": memory, "sqlite": sqlite}
        prefix = _bench.bench_prefix()
        if redis_url:
            import redis.asyncio

            from wxmiddleware.stores.redis import AsyncRedisStore

            stores["redis"] = AsyncRedisStore(
                lambda: redis.asyncio.Redis.from_url(redis_url), key_prefix=prefix
            )
        for store in stores.values():
            loop.run_until_complete(store.save(token, new_session(), IDLE))
            # The first get opens the SQLite reader; later ones run inline.
            loop.run_until_complete(store.get(token, IDLE))
        variants = {"bare": asgi_runner(loop, bare, asgi_scope({}))}
        for name, store in stores.items():
            variants[name] = asgi_runner(loop, wrap_starlette(store), asgi_scope(headers))
        peer, cookie = starlette_session_app()
        variants["starlette_session"] = asgi_runner(loop, peer, asgi_scope({"Cookie": cookie}))
        try:
            times = alternate(variants, requests, rounds)
        finally:
            for store in stores.values():
                loop.run_until_complete(store.close())
            if redis_url:
                import redis

                client = redis.Redis.from_url(redis_url)
                _bench.delete_prefixed(client, prefix)
                client.close()
    finally:
        loop.close()
    return _summary(times)


def report(results: Dict[str, Any]) -> str:
    lines = [
        f"{results['requests_per_round']} requests per round, {results['rounds']} rounds;"
        " medians of per-round figures"
    ]
    for framework in ("flask", "starlette"):
        data = results[framework]
        lines.append(f"  {framework}:")
        for name, micros in data["us_per_request"].items():
            extra = ""
            if name != "bare":
                extra = (
                    f"  {data['ratio_vs_bare'][name]:.3f} of bare, +{data['cost_us'][name]:.1f} µs"
                )
            lines.append(f"    {name:22} {micros:7.1f} µs/request{extra}")
        if "sqlite_vs_memory" in data:
            lines.append(f"    SQLite / memory throughput: {data['sqlite_vs_memory']:.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--requests", type=int, default=150, help="requests per round")
    parser.add_argument("--redis-url", help="use this Redis instead of a private server")
    args = parser.parse_args()
    with _bench.quiet_logging():
        if args.redis_url:
            results = measure(args.rounds, args.requests, args.redis_url)
        else:
            with _bench.PrivateRedis() as server:
                results = measure(args.rounds, args.requests, server.url)
    print(report(results))


if __name__ == "__main__":
    main()
