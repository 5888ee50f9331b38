"""Redis commands per authenticated request, per login and per logout, counted by the server.

A private ``redis-server`` (no persistence, a free loopback port, stopped at the end) runs
alone, so ``INFO commandstats`` deltas count exactly what the middleware sent: many requests
through ``WxMiddleware`` on a ``RedisStore`` and through ``WxASGIMiddleware`` on an
``AsyncRedisStore``, and, for comparison, through Flask-Session's Redis backend. Logins go to
the fake WeChat in a process of its own. Connections are opened before counting, so the
figures are per request, not per connection.

Run: ``python benchmarks/redis_commands.py [--requests 200] [--logins 50]``
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from typing import Any, Callable, Dict, List, Optional

import _bench
import overhead

from wxmiddleware import WxASGIMiddleware, WxConfig, WxMiddleware
from wxmiddleware.session import new_token

IDLE = 7200


def per_call(delta: Dict[str, int], calls: int) -> Dict[str, float]:
    return {name: count / calls for name, count in delta.items()}


def counted(
    server: _bench.PrivateRedis, admin: Any, action: Callable[[], None], calls: int
) -> Dict[str, Any]:
    before = server.commandstats(admin)
    action()
    delta = _bench.command_delta(before, server.commandstats(admin))
    return {"commands": per_call(delta, calls), "total": sum(delta.values()) / calls}


def login_environ(code: str) -> Dict[str, Any]:
    body = json.dumps({"code": code}).encode()
    environ = overhead.flask_environ({})
    environ.update(
        REQUEST_METHOD="POST",
        PATH_INFO="/wx/login",
        RAW_URI="/wx/login",
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH=str(len(body)),
    )
    environ["wsgi.input"] = io.BytesIO(body)
    return environ


def call_wsgi(app: Any, environ: Dict[str, Any]) -> tuple:  # type: ignore[type-arg]
    status: List[str] = []
    body = b"".join(app(environ, lambda line, headers, exc_info=None: status.append(line)))
    return status[0], body


def measure(requests: int = 200, logins: int = 50) -> Dict[str, Any]:
    import redis
    import redis.asyncio

    from wxmiddleware.stores.redis import AsyncRedisStore, RedisStore

    results: Dict[str, Any] = {}
    with _bench.PrivateRedis() as server, _bench.FakeWeChatProcess() as fake:
        admin = redis.Redis.from_url(server.url)
        prefix = _bench.bench_prefix()
        config = WxConfig(appid=fake.appid, secret=fake.secret, api_base=fake.url)

        # --- WSGI: RedisStore ---
        store = RedisStore.from_url(server.url, key_prefix=prefix)
        app = WxMiddleware(lambda e, s: (s("200 OK", []), [b"ok"])[1], config=config, store=store)
        warm = fake.codes(logins + 1)
        status, body = call_wsgi(app, login_environ(warm.pop()))
        if not status.startswith("200"):
            raise RuntimeError(f"login failed: {status} {body!r}")
        token = json.loads(body)["3rd_session"]
        me = overhead.flask_environ({"3rd-session": token})
        call_wsgi(app, me.copy())

        def wsgi_requests() -> None:
            for _ in range(requests):
                status, _ = call_wsgi(app, me.copy())
                assert status.startswith("200"), status

        tokens: List[str] = []

        def wsgi_logins() -> None:
            for code in warm:
                status, body = call_wsgi(app, login_environ(code))
                assert status.startswith("200"), (status, body)
                tokens.append(json.loads(body)["3rd_session"])

        def wsgi_logouts() -> None:
            for item in tokens:
                environ = overhead.flask_environ({"3rd-session": item})
                environ.update(REQUEST_METHOD="POST", PATH_INFO="/wx/logout", RAW_URI="/wx/logout")
                status, _ = call_wsgi(app, environ)
                assert status.startswith("204"), status

        results["wsgi_request"] = counted(server, admin, wsgi_requests, requests)
        results["wsgi_login"] = counted(server, admin, wsgi_logins, len(warm))
        results["wsgi_logout"] = counted(server, admin, wsgi_logouts, len(tokens))
        store.close()

        # --- ASGI: AsyncRedisStore ---
        async def asgi_part() -> None:
            astore = AsyncRedisStore.from_url(server.url, key_prefix=prefix)
            session = overhead.new_session()
            atoken = new_token()
            await astore.save(atoken, session, IDLE)
            _, inner = overhead.starlette_apps()
            asgi = WxASGIMiddleware(inner, config=config, store=astore)
            scope = overhead.asgi_scope({"3rd-session": atoken})
            messages: List[Dict[str, Any]] = []

            async def receive() -> Dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: Dict[str, Any]) -> None:
                messages.append(message)

            await asgi(dict(scope), receive, send)  # opens the connection
            before = server.commandstats(admin)
            for _ in range(requests):
                await asgi(dict(scope), receive, send)
            delta = _bench.command_delta(before, server.commandstats(admin))
            statuses = {m["status"] for m in messages if m["type"] == "http.response.start"}
            assert statuses == {200}, statuses
            results["asgi_request"] = {
                "commands": per_call(delta, requests),
                "total": sum(delta.values()) / requests,
            }
            await astore.close()

        asyncio.run(asgi_part())

        # --- Flask-Session's Redis backend, for comparison ---
        peer, cookie = overhead.flask_session_app(redis.Redis.from_url(server.url), prefix)
        peer_environ = overhead.flask_environ({"Cookie": cookie})
        call_wsgi(peer, peer_environ.copy())

        def peer_requests() -> None:
            for _ in range(requests):
                status, _ = call_wsgi(peer, peer_environ.copy())
                assert status.startswith("200"), status

        results["flask_session_request"] = counted(server, admin, peer_requests, requests)
        _bench.delete_prefixed(admin, prefix)
        admin.close()
    return results


def report(results: Dict[str, Any]) -> str:
    names = {
        "wsgi_request": "authenticated request, WxMiddleware + RedisStore",
        "asgi_request": "authenticated request, WxASGIMiddleware + AsyncRedisStore",
        "wsgi_login": "login, WxMiddleware + RedisStore",
        "wsgi_logout": "logout, WxMiddleware + RedisStore",
        "flask_session_request": "request, Flask-Session (Redis)",
    }
    lines = []
    for key, label in names.items():
        data = results[key]
        detail = ", ".join(f"{name} {count:g}" for name, count in data["commands"].items())
        lines.append(f"  {label:58} {data['total']:5.2f} commands  ({detail})")
    return "\n".join(lines)


def main() -> Optional[int]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--logins", type=int, default=50)
    args = parser.parse_args()
    with _bench.quiet_logging():
        print(report(measure(args.requests, args.logins)))
    return None


if __name__ == "__main__":
    main()
