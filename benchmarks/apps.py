"""Every app the benchmarks run: the apps the middleware wraps and their *bare* twins (which
answer ``/api/me`` from constants and log in without a session), *peers* that do the
middleware's work their own way, and *floors* that do only its unavoidable part, by hand.
"""

import base64
import functools
import inspect
import json
import os
import sqlite3
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import itsdangerous
import redis
import redis.asyncio
from _bench import FLOOR_TOKEN, OPENID, TOKEN_HEADER, UNIONID
from flask import Flask, abort, g, jsonify, request, session
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from wxmiddleware import WxConfig, WxSession
from wxmiddleware.asgi import WxUser
from wxmiddleware.wechat import WeChatClient

Finder = Callable[[str], Any]  # token -> session or None; asgi_floor awaits a coroutine's
SECRET_KEY = "bench-secret-key"
COLUMNS = "openid, session_key, unionid, created_at, expires_at"  # a SQLite floor's, after token
SELECT_SESSION = "SELECT " + COLUMNS + " FROM floor WHERE token = ?"


@functools.cache
def wechat() -> Any:
    """The package's jscode2session client, configured from ``WX_*`` on first use."""
    return WeChatClient(WxConfig.from_env())


def flask_app(wrapped: bool) -> Flask:
    """The Flask app; ``wrapped``: its ``/api/me`` reads what the middleware attached."""
    app = Flask("wrapped" if wrapped else "bare")

    @app.get("/api/me")
    def me() -> Any:
        if wrapped:
            env = request.environ
            return jsonify(openid=env["wxmiddleware.openid"], unionid=env["wxmiddleware.unionid"])
        return jsonify(openid=OPENID, unionid=UNIONID)

    @app.post("/wx/login")
    def login() -> Any:  # the bare app's logins through gunicorn (the middleware's never come)
        reply = wechat().code_to_session(json.loads(request.get_data())["code"])
        return jsonify(openid=reply.openid)

    return app


def starlette_app(wrapped: bool) -> Starlette:
    """The Starlette app; ``wrapped``: its ``/api/me`` reads what the middleware attached."""

    async def me(request: Any) -> JSONResponse:
        if wrapped:
            unionid = request.scope["wxmiddleware.unionid"]
            return JSONResponse({"openid": request.user.identity, "unionid": unionid})
        return JSONResponse({"openid": OPENID, "unionid": UNIONID})

    return Starlette(routes=[Route("/api/me", me)])


bare_flask, bare_starlette = flask_app(wrapped=False), starlette_app(wrapped=False)


def plain_wsgi(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
    """An app with nothing of its own to do: what is measured is the middleware's work."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


async def plain_asgi(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def login_only_asgi(client: Any) -> Callable[..., Any]:
    """A bare ASGI app that calls jscode2session with ``client``: that call and nothing else."""

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        reply = await client.code_to_session(json.loads((await receive())["body"])["code"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(reply.openid).encode()})

    return app


# --- the peers and the floors ---
def flask_hook_peer(find: Finder) -> Flask:
    """The hand-written Flask way: a ``before_request`` hook finds the token's user in a dict."""
    app = Flask("hook_peer")

    @app.before_request
    def authenticate() -> None:
        session = find(request.headers.get(TOKEN_HEADER, ""))
        if session is None:
            abort(401)
        g.session = session

    app.get("/api/me")(lambda: jsonify(openid=g.session.openid, unionid=g.session.unionid))
    return app


def flask_session_peer(redis_url: str, prefix: str) -> Tuple[Flask, List[Tuple[str, str]]]:
    """Flask-Session on Redis, and the cookie header of a session holding the openid."""
    from flask_session import Session  # not installed with the test extra

    app = Flask("flask_session_peer")
    app.config.update(SECRET_KEY=SECRET_KEY, SESSION_TYPE="redis")
    app.config.update(SESSION_REDIS=redis.Redis.from_url(redis_url), SESSION_KEY_PREFIX=prefix)
    Session(app)
    app.get("/api/me")(lambda: jsonify(openid=session["openid"], unionid=session.get("unionid")))

    @app.post("/login")
    def login() -> Any:
        session.update(openid=OPENID, unionid=UNIONID)
        return jsonify(ok=True)

    cookie = app.test_client().post("/login").headers["Set-Cookie"].split(";", 1)[0]
    return app, [("Cookie", cookie)]


def starlette_auth_peer(find: Finder) -> Starlette:
    """Starlette's own ``AuthenticationMiddleware`` with a backend reading a dict."""

    class Backend(AuthenticationBackend):
        async def authenticate(self, conn: Any) -> Any:
            session = find(conn.headers.get(TOKEN_HEADER, ""))
            if session is None:
                return None  # anonymous: the route would refuse it
            return AuthCredentials(["authenticated"]), SimpleUser(session.openid)

    async def me(request: Any) -> JSONResponse:
        return JSONResponse({"openid": request.user.identity, "unionid": UNIONID})

    middleware = [Middleware(AuthenticationMiddleware, backend=Backend())]
    return Starlette(routes=[Route("/api/me", me)], middleware=middleware)


def starlette_session_peer() -> Tuple[Starlette, List[Tuple[str, str]]]:
    """Starlette's SessionMiddleware (signed cookie), and a cookie holding the openid."""

    async def me(request: Any) -> JSONResponse:
        session = request.session
        return JSONResponse({"openid": session["openid"], "unionid": session.get("unionid")})

    middleware = [Middleware(SessionMiddleware, secret_key=SECRET_KEY)]
    app = Starlette(routes=[Route("/api/me", me)], middleware=middleware)
    data = base64.b64encode(json.dumps({"openid": OPENID, "unionid": UNIONID}).encode())
    signed = itsdangerous.TimestampSigner(SECRET_KEY).sign(data).decode()
    return app, [("Cookie", f"session={signed}")]


def wsgi_floor(app: Any, find: Finder) -> Any:
    """The least a WSGI login middleware does: environ key -> ``find`` -> environ keys."""

    def floor(environ: Dict[str, Any], start_response: Any) -> Any:
        session = find(environ.get("HTTP_3RD_SESSION", ""))
        if session is None:
            start_response("401 Unauthorized", [])
            return [b""]
        environ["wxmiddleware.session"] = session
        environ["wxmiddleware.openid"] = environ["REMOTE_USER"] = session.openid
        environ["wxmiddleware.unionid"] = session.unionid
        return app(environ, start_response)

    return floor


def asgi_floor(app: Any, find: Finder) -> Any:
    """The least an ASGI login middleware does: one pass over the headers for the token,
    ``find``, a scope copy with the keys and ``user`` the route reads."""
    token_name, awaited = TOKEN_HEADER.encode(), inspect.iscoroutinefunction(find)

    async def floor(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        token = next((v for n, v in scope["headers"] if n == token_name), b"").decode()
        session = find(token)
        if awaited:
            session = await session
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


def session_finder(store_url: str, token: str, asynchronous: bool = False) -> Finder:
    """A floor's lookup in the store ``store_url`` names (as ``WX_SESSION_STORE`` does), which
    it first gives the session of ``token``, under the token itself: ``memory://``, a dict's
    ``get``; ``sqlite:///…``, one ``SELECT`` by primary key on the thread's own connection
    (WAL); ``redis://…``, one ``GET`` of JSON on one pool (redis.asyncio's: ``asynchronous``)."""
    fields: List[Any] = [OPENID, "key", UNIONID, time.time(), time.time() + 7200]
    if not store_url.startswith(("sqlite:///", "redis://")):
        return {token: WxSession(*fields)}.get
    if store_url.startswith("redis://"):
        prefix = "wxbench-floor:"
        with redis.Redis.from_url(store_url) as seeding:
            seeding.set(prefix + token, json.dumps(fields))
        client: Any = (redis.asyncio.Redis if asynchronous else redis.Redis).from_url(store_url)

        def decoded(value: Optional[bytes]) -> Optional[WxSession]:
            return None if value is None else WxSession(*json.loads(value))

        if not asynchronous:
            return lambda token: decoded(client.get(prefix + token))

        async def get(token: str) -> Optional[WxSession]:
            return decoded(await client.get(prefix + token))

        return get
    path, local = store_url[len("sqlite:///") :], threading.local()
    local.cursor = sqlite3.connect(path, isolation_level=None).cursor()  # this thread's
    local.cursor.execute("PRAGMA journal_mode=WAL")
    local.cursor.execute(f"CREATE TABLE IF NOT EXISTS floor (token TEXT PRIMARY KEY, {COLUMNS})")
    local.cursor.execute("INSERT OR REPLACE INTO floor VALUES (?, ?, ?, ?, ?, ?)", (token, *fields))
    session_of = functools.lru_cache(maxsize=1024)(lambda row: WxSession(*row))  # as ours caches

    def select(token: str) -> Optional[WxSession]:
        if not hasattr(local, "cursor"):  # the thread's first request
            local.cursor = sqlite3.connect(path, isolation_level=None).cursor()
        row = local.cursor.execute(SELECT_SESSION, (token,)).fetchone()
        return None if row is None else session_of(row)

    return select


def floor_flask() -> Any:
    """gunicorn's ``apps:floor_flask()``: the floor on the store ``WX_SESSION_STORE`` names."""
    find = session_finder(os.environ["WX_SESSION_STORE"], FLOOR_TOKEN)
    return wsgi_floor(flask_app(wrapped=True).wsgi_app, find)


def floor_starlette() -> Any:
    """uvicorn's ``--factory apps:floor_starlette``: the same, for ASGI."""
    find = session_finder(os.environ["WX_SESSION_STORE"], FLOOR_TOKEN, asynchronous=True)
    return asgi_floor(starlette_app(wrapped=True), find)
