"""Optimisation proposals that were measured and not applied, next to the current code.

Nothing in the package is changed: each alternative is a subclass defined here, run next to
the current code on the same request in the same alternating rounds, so its effect is a
ratio measured under the same background load. What was applied (P1 and the reused cursor
of P2, P5, P7, the header prefilter of P4) is in the package now; its before/after is the
Goals table of ``RESULTS.md`` (``benchmarks/baseline.json`` vs this run) and, for the
jscode2session client, ``python benchmarks/login_throughput.py --client-settings``.

What remains here, each with the reason it was not applied:

- P3 ``WxMiddleware.__call__``: a fast path for a protected request with one valid token
  header (classify the path without the raw URI, read one environ key, skip the generic
  ``_authenticate``/``pick_token``/``_attach`` calls). Not applied: no measurable gain
  (0.910 -> 0.900 of bare when measured), and it is a second copy of the authentication path.
- P4 ``WxASGIMiddleware.__call__``: the same fast path for ASGI (the raw path decoded only
  for public/optional paths, ``store.get`` awaited directly, the scope copy built inline).
  Its header prefilter by length was applied (``_token_name_lengths``); the fast path was
  not: it gains a few µs but is a second copy of the authentication path, and the design
  keeps every decision written once in the core, with thin adapters.
- P2, its ``os.getpid()`` half: ``SQLiteStore._conn`` compares a fork generation that
  ``os.register_at_fork(after_in_child=...)`` bumps instead of calling ``os.getpid()`` on
  every call. Not applied, on purpose: the pid check also catches a fork that bypasses the
  ``register_at_fork`` hooks (``tests/stores/test_sqlite.py::
  test_connection_from_another_process_is_replaced_not_closed``).
- P6 (the floor, a measurement rather than a proposal): on top of the above, a known token
  selects only its deadlines (a row's ``value`` never changes under its key): what is left
  is the SELECT itself.
- ``PRAGMA mmap_size`` on the SQLite connection: no gain (the reads hit SQLite's page cache).

Run: ``python benchmarks/proposals.py [--rounds 80] [--requests 100]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional

import _bench
import overhead
from _bench import alternate, ratio

from wxmiddleware import AsyncSQLiteStore, MemoryStore, SQLiteStore, WxASGIMiddleware, WxMiddleware
from wxmiddleware.asgi import WxCredentials, WxUser, _route_path
from wxmiddleware.core import RequestKind
from wxmiddleware.errors import WxError
from wxmiddleware.session import WxSession, new_token
from wxmiddleware.stores import sqlite as sqlite_module
from wxmiddleware.stores.aio import AsyncMemoryStore

IDLE = overhead.IDLE
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
MAX_TOKEN_LENGTH = 128

# --- P2, the getpid half: SQLiteStore._conn ----------------------------------------------

_FORK_GENERATION = [0]


def _forked() -> None:
    _FORK_GENERATION[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


class ForkGenerationSQLiteStore(SQLiteStore):
    """P2 (getpid half): no ``os.getpid()`` per call; a fork generation bumped in the child.

    The store already keeps the parsed sessions (P1) and one cursor per connection.
    """

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn = local.conn
        if conn is not None and getattr(local, "generation", -1) == _FORK_GENERATION[0]:
            return conn
        conn = super()._conn()
        local.generation = _FORK_GENERATION[0]
        return conn


_GET_TIMES = "SELECT idle_until, expires_at FROM wx_sessions WHERE key = ?"


class FloorSQLiteStore(ForkGenerationSQLiteStore):
    """P6 (the floor): ``get`` in one function; a known token selects only its deadlines.

    A session row's ``value`` never changes under its key (a key is the hash of a fresh
    random token; nothing updates ``value``), so once parsed, only the deadlines are read.
    """

    def get(self, token: str, idle_ttl: int) -> Optional[WxSession]:
        cached = self._recent.get(token)
        if cached is None:
            return super().get(token, idle_ttl)
        key = cached[0]
        try:
            self._conn()
            rows = self._local.cursor.execute(_GET_TIMES, (key,)).fetchall()
        except sqlite3.Error as exc:
            raise self._fail(exc, "get", "session", key) from exc
        if not rows:
            return None
        idle_until, expires_at = rows[0]
        now = time.time()
        if now >= idle_until or now >= expires_at:
            return None
        new_idle_until = min(now + idle_ttl, expires_at)
        if new_idle_until - idle_until > min(60.0, idle_ttl / 10):
            self.slide(sqlite_module.Lookup(cached[2], key, new_idle_until))
        return cached[2]


class MmapSQLiteStore(SQLiteStore):
    """Measured, not applied: ``PRAGMA mmap_size`` (reads through a memory map)."""

    def _conn(self) -> sqlite3.Connection:
        new = self._local.conn is None
        conn = super()._conn()
        if new:
            conn.execute("PRAGMA mmap_size=268435456")
        return conn


# --- P3: the WSGI fast path --------------------------------------------------------------


class FastWxMiddleware(WxMiddleware):
    """P3: a protected request with one well-formed token header takes a short path.

    Not applied: no measurable gain, and a second copy of the authentication path.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._first_key = self._token_keys[0]
        self._other_keys = self._token_keys[1:]
        self._ttl = self.config.session_ttl

    def __call__(self, environ: Any, start_response: Any) -> Any:
        # PROTECTED never depends on the raw URI (it only ever demotes public paths).
        if self._router.classify(environ.get("PATH_INFO", "")) is RequestKind.PROTECTED:
            token = environ.get(self._first_key)
            if (
                token is not None
                and len(token) <= MAX_TOKEN_LENGTH
                and _TOKEN.fullmatch(token)
                and not any(key in environ for key in self._other_keys)
            ):
                try:
                    session = self.store.get(token, self._ttl)
                except WxError:
                    session = None  # the generic path logs it and answers 503
                if session is not None:
                    environ["wxmiddleware.session"] = session
                    environ["wxmiddleware.openid"] = environ["REMOTE_USER"] = session.openid
                    environ["wxmiddleware.session_key"] = session.session_key
                    environ["wxmiddleware.unionid"] = session.unionid
                    return self.app(environ, start_response)
        return super().__call__(environ, start_response)


# --- P4: the ASGI fast path --------------------------------------------------------------


class FastWxASGIMiddleware(WxASGIMiddleware):
    """P4's fast path for ASGI (its header prefilter by length is in the package now).

    Not applied: a second copy of the authentication path; the design keeps each decision
    written once in the core, with thin adapters.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ttl = self.config.session_ttl

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and self._router.classify(_route_path(scope)) is RequestKind.PROTECTED
        ):
            found: Optional[bytes] = None
            count = 0
            lengths, names = self._token_name_lengths, self._token_names
            for name, value in scope["headers"]:
                if len(name) in lengths and name.lower().replace(b"_", b"-") in names:
                    found, count = value, count + 1
            if count == 1 and found is not None and len(found) <= MAX_TOKEN_LENGTH:
                token = found.decode("latin-1")
                if _TOKEN.fullmatch(token):
                    try:
                        session = await self.store.get(token, self._ttl)
                    except WxError:
                        session = None  # the generic path logs it and answers 503
                    if session is not None:
                        await self.app(
                            {
                                **scope,
                                "wxmiddleware.session": session,
                                "wxmiddleware.openid": session.openid,
                                "wxmiddleware.session_key": session.session_key,
                                "wxmiddleware.unionid": session.unionid,
                                "user": WxUser(session),
                                "auth": WxCredentials(("authenticated",)),
                            },
                            receive,
                            send,
                        )
                        return
        await super().__call__(scope, receive, send)


# --- the measurements --------------------------------------------------------------------


def measure_flask(rounds: int, requests: int, state: Path) -> Dict[str, Any]:
    token = new_token()
    bare, _ = overhead.flask_apps()
    headers = {"3rd-session": token}

    def wrapped(store: Any, middleware: Any = WxMiddleware) -> Any:
        _, inner = overhead.flask_apps()
        inner.wsgi_app = middleware(inner.wsgi_app, config=overhead.CONFIG, store=store)
        return inner

    stores: Dict[str, Any] = {
        "memory": MemoryStore(),
        "sqlite": SQLiteStore(state / "p-current.sqlite3"),
        "sqlite_getpid": ForkGenerationSQLiteStore(state / "p-getpid.sqlite3"),
        "sqlite_p6": FloorSQLiteStore(state / "p-p6.sqlite3"),
        "sqlite_mmap": MmapSQLiteStore(state / "p-mmap.sqlite3"),
    }
    for store in stores.values():
        store.save(token, overhead.new_session(), IDLE)
    environ = overhead.flask_environ(headers)
    variants = {
        "bare": overhead.wsgi_runner(bare, overhead.flask_environ({})),
        "memory": overhead.wsgi_runner(wrapped(stores["memory"]), environ),
        "memory_p3": overhead.wsgi_runner(wrapped(stores["memory"], FastWxMiddleware), environ),
    }
    for name in ("sqlite", "sqlite_getpid", "sqlite_p6", "sqlite_mmap"):
        variants[name] = overhead.wsgi_runner(wrapped(stores[name]), environ)
    variants["sqlite_p3"] = overhead.wsgi_runner(
        wrapped(stores["sqlite"], FastWxMiddleware), environ
    )
    try:
        times = alternate(variants, requests, rounds)
    finally:
        for store in stores.values():
            store.close()
    return {
        "us_per_request": {name: 1e6 * _bench.median(v) for name, v in times.items()},
        "vs_bare": {name: ratio(times, name, "bare") for name in times if name != "bare"},
        # Each SQLite variant against the memory store on the same middleware.
        "sqlite_vs_memory": {
            name: ratio(times, name, "memory_p3" if name.endswith("_p3") else "memory")
            for name in times
            if name.startswith("sqlite")
        },
        "times": times,
    }


def measure_starlette(rounds: int, requests: int, state: Path) -> Dict[str, Any]:
    token = new_token()
    headers = {"3rd-session": token}
    loop = asyncio.new_event_loop()
    try:
        bare, _ = overhead.starlette_apps()
        stores: Dict[str, Any] = {
            "memory": AsyncMemoryStore(),
            "sqlite": AsyncSQLiteStore(SQLiteStore(state / "s-current.sqlite3")),
            "sqlite_getpid": AsyncSQLiteStore(
                ForkGenerationSQLiteStore(state / "s-getpid.sqlite3")
            ),
        }
        for store in stores.values():
            loop.run_until_complete(store.save(token, overhead.new_session(), IDLE))
            loop.run_until_complete(store.get(token, IDLE))

        def wrapped(store: Any, middleware: Any = WxASGIMiddleware) -> Any:
            _, inner = overhead.starlette_apps()
            return middleware(inner, config=overhead.CONFIG, store=store)

        scope = overhead.asgi_scope(headers)
        variants = {
            "bare": overhead.asgi_runner(loop, bare, overhead.asgi_scope({})),
            "memory": overhead.asgi_runner(loop, wrapped(stores["memory"]), scope),
            "memory_p4": overhead.asgi_runner(
                loop, wrapped(stores["memory"], FastWxASGIMiddleware), scope
            ),
            "sqlite": overhead.asgi_runner(loop, wrapped(stores["sqlite"]), scope),
            "sqlite_getpid": overhead.asgi_runner(loop, wrapped(stores["sqlite_getpid"]), scope),
            "sqlite_p4": overhead.asgi_runner(
                loop, wrapped(stores["sqlite"], FastWxASGIMiddleware), scope
            ),
        }
        try:
            times = alternate(variants, requests, rounds)
        finally:
            for store in stores.values():
                loop.run_until_complete(store.close())
    finally:
        loop.close()
    return {
        "us_per_request": {name: 1e6 * _bench.median(v) for name, v in times.items()},
        "vs_bare": {name: ratio(times, name, "bare") for name in times if name != "bare"},
        "sqlite_vs_memory": {
            name: ratio(times, name, "memory_p4" if name.endswith("_p4") else "memory")
            for name in times
            if name.startswith("sqlite")
        },
        "times": times,
    }


def measure(rounds: int = 80, requests: int = 100) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as state, _bench.quiet_logging():
        return {
            "flask": measure_flask(rounds, requests, Path(state)),
            "starlette": measure_starlette(rounds, requests, Path(state)),
        }


def report(results: Dict[str, Any]) -> str:
    lines = []
    for framework in ("flask", "starlette"):
        data = results[framework]
        lines.append(f"  {framework}:")
        for name, micros in data["us_per_request"].items():
            extra = f"  {data['vs_bare'][name]:.3f} of bare" if name in data["vs_bare"] else ""
            lines.append(f"    {name:16} {micros:7.1f} µs/request{extra}")
        for name, value in data["sqlite_vs_memory"].items():
            lines.append(f"    {name} / memory: {value:.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=80)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    print(report(measure(args.rounds, args.requests)))


if __name__ == "__main__":
    main()
