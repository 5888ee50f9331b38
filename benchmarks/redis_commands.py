"""Redis commands per authenticated request, login and logout, counted by the server.

``INFO commandstats`` deltas of a private ``redis-server`` (RESULTS.md, *Redis commands*).
Run: ``python benchmarks/redis_commands.py [--requests 200] [--logins 50]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any, Dict, Iterable

import _bench
import overhead
import report

from wxmiddleware import AsyncRedisStore, RedisStore, WxASGIMiddleware, WxMiddleware


def measure(requests: int = 200, logins: int = 50) -> Dict[str, Any]:
    import redis

    results: Dict[str, Any] = {}
    with _bench.PrivateRedis() as server, _bench.FakeWeChatProcess() as fake:
        admin, loop = redis.Redis.from_url(server.url), asyncio.new_event_loop()

        def count(name: str, calls: int, envs: Iterable[Any], app: Any, expected: int = 200) -> Any:
            """Call ``app`` (WSGI, or ASGI with scopes) once per item; count the commands."""
            before = admin.info("commandstats")
            if isinstance(app, WxASGIMiddleware):
                answers = [loop.run_until_complete(_bench.call_asgi(app, env)) for env in envs]
            else:
                answers = [_bench.call_wsgi(app, env) for env in envs]
            after = admin.info("commandstats")
            assert {status for status, _ in answers} == {expected}, answers[:1]
            diff = {k: v["calls"] - before.get(k, {"calls": 0})["calls"] for k, v in after.items()}
            delta = {k.replace("cmdstat_", ""): v for k, v in diff.items()}
            delta["info"] -= 1  # the INFO itself
            used = {command: n / calls for command, n in sorted(delta.items()) if n}
            results[name] = {"commands": used, "total": sum(used.values())}
            return answers

        config, codes = fake.config(), fake.codes(logins + 2)
        store = RedisStore.from_url(server.url)
        app = WxMiddleware(lambda e, s: (s("200 OK", []), [b"ok"])[1], config=config, store=store)
        me = _bench.environ(_bench.wsgi_login(app, codes.pop()))
        _bench.call_wsgi(app, me.copy())  # opens the connection
        count("wsgi_request", requests, (me.copy() for _ in range(requests)), app)
        body = _bench.login_body
        envs = [_bench.environ(None, "POST", "/wx/login", body(code)) for code in codes[1:]]
        answers = count("wsgi_login", logins, envs, app)
        tokens = [json.loads(answer)["3rd_session"] for _, answer in answers]
        envs = [_bench.environ(t, "POST", "/wx/logout") for t in tokens]
        count("wsgi_logout", logins, envs, app, 204)
        store.close()

        astore = AsyncRedisStore.from_url(server.url)
        asgi = WxASGIMiddleware(overhead.starlette_apps()[1], config=config, store=astore)
        token = loop.run_until_complete(_bench.asgi_login(asgi, codes[0]))
        scope = _bench.scope(token)
        loop.run_until_complete(_bench.call_asgi(asgi, dict(scope)))  # opens the connection
        count("asgi_request", requests, (dict(scope) for _ in range(requests)), asgi)
        loop.run_until_complete(_bench.aclose(astore))
        loop.close()

        peer, headers = overhead.flask_session_peer(server.url, "peer:")
        peer_env = _bench.environ(headers=headers)
        _bench.call_wsgi(peer, peer_env.copy())
        count("flask_session_request", requests, (peer_env.copy() for _ in range(requests)), peer)
        admin.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--logins", type=int, default=50)
    args = parser.parse_args()
    with _bench.quiet_logging():
        print(report.redis_table(measure(args.requests, args.logins)))


if __name__ == "__main__":
    main()
