"""Optimisation proposals, each measured before/after in one run (alternating rounds).

Nothing in the package is changed: each proposal is a subclass (or a replacement client)
defined here, run next to the current code on the same request in the same rounds, so the
gain is a ratio measured under the same background load. ``RESULTS.md`` describes each
proposal and where it belongs; once one is applied to the package, its "current" and
"proposed" rows here converge (the subclasses keep working on top of the new code, or fall
back to it).

- P1 ``SQLiteStore.lookup``: keep a small per-store map token -> (key, JSON value, parsed
  WxSession); a request whose row still holds the same JSON skips sha256 and json.loads
  (the SELECT always runs, so revocation and expiry stay exact).
- P2 ``SQLiteStore._conn``: no ``os.getpid()`` system call per call (a fork generation
  bumped by ``os.register_at_fork(after_in_child=...)`` instead) and one reused cursor.
- P3 ``WxMiddleware.__call__``: a fast path for a protected request with one valid token
  header: classify the path without the raw URI, read one environ key, skip the generic
  ``_authenticate``/``pick_token``/``_attach`` calls.
- P4 ``WxASGIMiddleware.__call__``: the same for ASGI; token headers are found by length
  before any ``lower()``/``replace()``, the raw path is decoded only for public/optional
  paths, one coroutine less.
- P5 ``AsyncWeChatClient``: each in-flight jscode2session gets a connection of its own,
  checked out of a LIFO free list (an ``httpx.AsyncClient`` with one connection, or an
  ``httpcore.AsyncHTTPConnection``), instead of sharing one httpx pool: httpcore 1.0's pool
  hands one idle connection to every request queued at the same instant and makes all but
  one retry (O(n²) per burst), and, with ``max_keepalive_connections=8``, closes almost every
  connection after use (about one TCP connect per login).
- P6 (the floor, not proposed): on top of P1+P2, a known token selects only its deadlines.
- P7 ``AsyncSQLiteStore`` writes: try them inline on the loop's own connection with a zero
  busy timeout (no hop to the writer thread, ~0.19 ms of CPU each) and fall back to the
  writer thread when SQLite's write lock is taken.
- also measured, not proposed: ``PRAGMA mmap_size`` on the SQLite connection.

Run: ``python benchmarks/proposals.py [--rounds 80] [--requests 100]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import _bench
import httpx
import overhead
from _bench import alternate, ratio

from wxmiddleware import AsyncSQLiteStore, MemoryStore, SQLiteStore, WxASGIMiddleware, WxMiddleware
from wxmiddleware.asgi import WxCredentials, WxUser
from wxmiddleware.core import RequestKind
from wxmiddleware.errors import WxError
from wxmiddleware.session import WxSession, new_token, token_key
from wxmiddleware.stores import sqlite as sqlite_module
from wxmiddleware.stores.aio import AsyncMemoryStore
from wxmiddleware.wechat.aio import AsyncWeChatClient

IDLE = overhead.IDLE
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
MAX_TOKEN_LENGTH = 128

# --- P1, P2: SQLiteStore -----------------------------------------------------------------

#: How many parsed sessions a store keeps (FIFO eviction); ~0.5 KB each.
RECENT_SESSIONS = 1024


class CachedSQLiteStore(SQLiteStore):
    """P1: skip sha256 and JSON parsing when the row still holds the JSON last parsed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recent: Dict[str, Tuple[str, str, WxSession]] = {}

    def lookup(self, token: str, idle_ttl: int) -> Optional[sqlite_module.Lookup]:
        cached = self._recent.get(token)
        key = token_key(token) if cached is None else cached[0]
        try:
            rows = self._select(key)
        except sqlite3.Error as exc:
            raise self._fail(exc, "get", "session", key) from exc
        if not rows:
            return None
        value, idle_until, expires_at = rows[0]
        now = time.time()
        if now >= idle_until or now >= expires_at:
            return None
        if cached is not None and cached[1] == value:
            session = cached[2]
        else:
            session = WxSession.from_json(value)
            recent = self._recent
            if len(recent) >= RECENT_SESSIONS:
                # Another thread may evict the same entry at once: then nothing to do.
                with contextlib.suppress(StopIteration, KeyError, RuntimeError):
                    del recent[next(iter(recent))]
            recent[token] = (key, value, session)
        new_idle_until = min(now + idle_ttl, expires_at)
        moved = new_idle_until - idle_until > min(60.0, idle_ttl / 10)
        return sqlite_module.Lookup(session, key, new_idle_until if moved else None)

    def _select(self, key: str) -> List[Any]:
        rows: List[Any] = self._conn().execute(sqlite_module._GET, (key,)).fetchall()
        return rows


_FORK_GENERATION = [0]


def _forked() -> None:
    _FORK_GENERATION[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


class FastConnSQLiteStore(CachedSQLiteStore):
    """P1 + P2: also no getpid() per call, and one reused cursor per connection."""

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn = local.conn
        if conn is not None and getattr(local, "generation", -1) == _FORK_GENERATION[0]:
            return conn
        conn = super()._conn()
        local.generation = _FORK_GENERATION[0]
        local.cursor = conn.cursor()
        return conn

    def _select(self, key: str) -> List[Any]:
        self._conn()
        rows: List[Any] = self._local.cursor.execute(sqlite_module._GET, (key,)).fetchall()
        return rows


_GET_TIMES = "SELECT idle_until, expires_at FROM wx_sessions WHERE key = ?"


class FusedSQLiteStore(FastConnSQLiteStore):
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
    """Measured, not proposed: ``PRAGMA mmap_size`` (reads through a memory map)."""

    def _conn(self) -> sqlite3.Connection:
        new = self._local.conn is None
        conn = super()._conn()
        if new:
            conn.execute("PRAGMA mmap_size=268435456")
        return conn


# --- P7: ASGI SQLite writes inline when the write lock is free ---------------------------


class InlineFirstAsyncSQLiteStore(AsyncSQLiteStore):
    """P7: try each write on the event loop's own connection with a zero busy timeout.

    A hop to the writer thread costs ~0.19 ms of CPU here (executor queue, futex wake-ups,
    the loop's self-pipe), more than the write itself (claim_code ~50 µs, save ~120 µs
    when timed alone). When SQLite's write lock is free, which it nearly always is, the write
    runs inline and cannot wait; when another writer holds the lock, SQLite answers "locked"
    at once (nothing was written) and the call goes to the writer thread as today. The
    inline connection never checkpoints (``wal_autocheckpoint=0``: a checkpoint may
    ``fsync``); the writer thread runs a passive checkpoint every ``CHECKPOINT_EVERY`` inline
    writes, and the purge of expired rows stays in the writer thread.
    """

    CHECKPOINT_EVERY = 500

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self._inline = SQLiteStore(self.sync.path, timeout=0.0)
        self._inline_writes = 0
        self._checkpointing: Optional[asyncio.Future[None]] = None
        self.inline_hits = 0
        self.fallbacks = 0

    def _inline_conn_ready(self) -> None:
        conn = self._inline._conn()
        if not getattr(self._inline._local, "tuned", False):
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._inline._local.tuned = True
        # The purge stays in the writer thread: it may delete many rows.
        self._inline._next_purge = float("inf")

    async def _write(self, name: str, *args: Any) -> Any:
        if self._opened:
            try:
                self._inline_conn_ready()
                result = getattr(self._inline, name)(*args)
            except WxError as error:
                if "locked" not in (error.detail or "") and "busy" not in (error.detail or ""):
                    raise
                self.fallbacks += 1
            else:
                self.inline_hits += 1
                self._inline_writes += 1
                due = self._inline_writes % self.CHECKPOINT_EVERY == 0
                if due and (self._checkpointing is None or self._checkpointing.done()):
                    self._checkpointing = asyncio.ensure_future(self._in_writer(self._checkpoint))
                return result
        return await self._in_writer(getattr(self.sync, name), *args)

    def _checkpoint(self) -> None:
        # RESTART waits (within the busy timeout) until the WAL is fully copied and no reader
        # needs it, so that the next write starts the WAL file over instead of growing it.
        self.sync._conn().execute("PRAGMA wal_checkpoint(RESTART)")
        if time.time() >= self.sync._next_purge:
            self.sync.purge_expired()

    async def claim_code(self, code_key: str, ttl: int) -> Optional[str]:
        result: Optional[str] = await self._write("claim_code", code_key, ttl)
        return result

    async def save(self, *args: Any) -> None:
        await self._write("save", *args)

    async def close(self) -> None:
        self._inline.close()
        await super().close()


# --- P3: the WSGI fast path --------------------------------------------------------------


class FastWxMiddleware(WxMiddleware):
    """P3: a protected request with one well-formed token header takes a short path."""

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
    """P4: the same short path for ASGI."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._name_lengths = frozenset(len(name) for name in self._token_names)
        self._ttl = self.config.session_ttl

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            root_path: str = scope.get("root_path", "")
            if root_path and path.startswith(root_path + "/"):
                path = path[len(root_path) :]
            if self._router.classify(path) is RequestKind.PROTECTED:
                found: Optional[bytes] = None
                count = 0
                lengths, names = self._name_lengths, self._token_names
                for name, value in scope["headers"]:
                    if len(name) in lengths and name.lower().replace(b"_", b"-") in names:
                        found, count = value, count + 1
                if count == 1 and found is not None and len(found) <= MAX_TOKEN_LENGTH:
                    token = found.decode("latin-1")
                    if _TOKEN.fullmatch(token):
                        try:
                            session = await self.store.get(token, self._ttl)
                        except WxError:
                            session = None
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


# --- P5: exclusive connections for jscode2session ----------------------------------------


class ExclusiveClientWeChat(AsyncWeChatClient):
    """P5a: one ``httpx.AsyncClient`` (one connection) per in-flight request, LIFO reuse."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._free: List[httpx.AsyncClient] = []

    async def _fetch(
        self, method: str, url: str, params: Any, json_body: Any, collector: Any
    ) -> int:
        client = (
            self._free.pop()
            if self._free
            else httpx.AsyncClient(
                timeout=self._timeout,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            )
        )
        try:
            async with client.stream(
                method,
                url,
                params=params,
                json=json_body,
                timeout=self._timeout,
                follow_redirects=False,
            ) as reply:
                async for chunk in reply.aiter_bytes():
                    collector.feed(chunk)
                return reply.status_code
        finally:
            self._free.append(client)  # at most the peak concurrency (100 at most)

    async def aclose(self) -> None:
        while self._free:
            await self._free.pop().aclose()
        await super().aclose()


class ExclusiveConnectionWeChat(AsyncWeChatClient):
    """P5b: one ``httpcore.AsyncHTTPConnection`` per in-flight request, LIFO reuse.

    httpx still builds the URL (``params=`` encoding); httpcore sends it. A connection is
    reused only after a complete, successful answer; any error closes it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._free: List[Any] = []

    async def _fetch(
        self, method: str, url: str, params: Any, json_body: Any, collector: Any
    ) -> int:
        import httpcore

        target = httpx.URL(url, params=params)
        connection = (
            self._free.pop()
            if self._free
            else httpcore.AsyncHTTPConnection(
                httpcore.Origin(target.raw_scheme, target.raw_host, target.port or 80)
            )
        )
        reusable = False
        timeout = {
            "connect": self._config.connect_timeout,
            "read": self._config.read_timeout,
            "write": self._config.read_timeout,
            "pool": self._config.connect_timeout,
        }
        try:
            async with connection.stream(
                method,
                httpcore.URL(
                    scheme=target.raw_scheme,
                    host=target.raw_host,
                    port=target.port,
                    target=target.raw_path,
                ),
                headers=[(b"Host", target.netloc), (b"Accept", b"*/*")],
                extensions={"timeout": timeout},
            ) as reply:
                async for chunk in reply.aiter_stream():
                    collector.feed(chunk)
                reusable = True
                return int(reply.status)
        except httpcore.TimeoutException as exc:
            raise httpx.ReadTimeout(str(type(exc).__name__)) from None
        except httpcore.ConnectError as exc:
            raise httpx.ConnectError(str(type(exc).__name__)) from None
        except httpcore.NetworkError as exc:
            raise httpx.ReadError(str(type(exc).__name__)) from None
        finally:
            if reusable and connection.is_idle():
                self._free.append(connection)
            else:
                await connection.aclose()

    async def aclose(self) -> None:
        while self._free:
            await self._free.pop().aclose()
        await super().aclose()


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
        "sqlite_p1": CachedSQLiteStore(state / "p-p1.sqlite3"),
        "sqlite_p1p2": FastConnSQLiteStore(state / "p-p1p2.sqlite3"),
        "sqlite_p6": FusedSQLiteStore(state / "p-p6.sqlite3"),
        "sqlite_mmap": MmapSQLiteStore(state / "p-mmap.sqlite3"),
    }
    for store in stores.values():
        store.save(token, overhead.new_session(), IDLE)
    variants = {
        "bare": overhead.wsgi_runner(bare, overhead.flask_environ({})),
        "memory": overhead.wsgi_runner(wrapped(stores["memory"]), overhead.flask_environ(headers)),
        "memory_p3": overhead.wsgi_runner(
            wrapped(stores["memory"], FastWxMiddleware), overhead.flask_environ(headers)
        ),
    }
    for name in ("sqlite", "sqlite_p1", "sqlite_p1p2", "sqlite_p6", "sqlite_mmap"):
        variants[name] = overhead.wsgi_runner(
            wrapped(stores[name]), overhead.flask_environ(headers)
        )
    variants["sqlite_p1p2p3"] = overhead.wsgi_runner(
        wrapped(stores["sqlite_p1p2"], FastWxMiddleware), overhead.flask_environ(headers)
    )
    try:
        times = alternate(variants, requests, rounds)
    finally:
        for store in stores.values():
            store.close()
    return {
        "us_per_request": {name: 1e6 * _bench.median(v) for name, v in times.items()},
        "vs_bare": {name: ratio(times, name, "bare") for name in times if name != "bare"},
        "sqlite_vs_memory": {
            name: ratio(times, name, "memory") for name in times if name.startswith("sqlite")
        },
        "sqlite_vs_memory_p3": {
            name: ratio(times, name, "memory_p3") for name in ("sqlite_p1p2p3",)
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
            "sqlite_p1p2": AsyncSQLiteStore(FastConnSQLiteStore(state / "s-p1p2.sqlite3")),
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
            "sqlite_p1p2p4": overhead.asgi_runner(
                loop, wrapped(stores["sqlite_p1p2"], FastWxASGIMiddleware), scope
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
            "sqlite": ratio(times, "sqlite", "memory"),
            "sqlite_p1p2p4": ratio(times, "sqlite_p1p2p4", "memory_p4"),
        },
        "times": times,
    }


def measure_logins(
    concurrency: int = 100, latency: float = 0.1, per_client: int = 5, rounds: int = 3
) -> Dict[str, Any]:
    """P5: ASGI logins (memory store, direct driver) with each jscode2session client."""
    import login_throughput

    with _bench.FakeWeChatProcess(latency) as fake:
        config = overhead.CONFIG.with_options(
            appid=fake.appid, secret=fake.secret, api_base=fake.url
        )

        async def main(state: Path) -> Dict[str, List[float]]:
            clients = {
                "current": AsyncWeChatClient(config),
                "p5a_client_per_request": ExclusiveClientWeChat(config),
                "p5b_connection_per_request": ExclusiveConnectionWeChat(config),
            }
            apps = {
                name: WxASGIMiddleware(
                    login_throughput.not_found, config, store=AsyncMemoryStore(), wechat=client
                )
                for name, client in clients.items()
            }
            apps["current_sqlite"] = WxASGIMiddleware(
                login_throughput.not_found,
                config,
                store=AsyncSQLiteStore(state / "current.sqlite3"),
                wechat=AsyncWeChatClient(config),
            )
            apps["p5b_sqlite"] = WxASGIMiddleware(
                login_throughput.not_found,
                config,
                store=AsyncSQLiteStore(state / "p5b.sqlite3"),
                wechat=ExclusiveConnectionWeChat(config),
            )
            apps["p5b_p7_sqlite"] = WxASGIMiddleware(
                login_throughput.not_found,
                config,
                store=InlineFirstAsyncSQLiteStore(SQLiteStore(state / "p7.sqlite3")),
                wechat=ExclusiveConnectionWeChat(config),
            )
            try:
                rates = await login_throughput.run_rounds(
                    fake, dict(apps), concurrency, per_client, rounds, ["direct"]
                )
            finally:
                for app in apps.values():
                    await app.store.close()
                    await app.wechat.aclose()
            return rates["direct"]

        with tempfile.TemporaryDirectory() as state:
            rates = asyncio.run(main(Path(state)))
        cpu = login_throughput.CPU_LOG["direct"]
    ideal = concurrency / latency
    return {
        "ideal": ideal,
        "rates": {name: _bench.median(values) for name, values in rates.items()},
        "of_ideal": {name: _bench.median(values) / ideal for name, values in rates.items()},
        # SQLite rows compare with the current client on SQLite, the others on memory.
        "vs_current": {
            name: _bench.median(
                [
                    v / c
                    for v, c in zip(
                        values, rates["current_sqlite" if name.endswith("sqlite") else "current"]
                    )
                ]
            )
            for name, values in rates.items()
        },
        "cpu_ms_app_process": {
            name: _bench.median([c[0] for c in values]) for name, values in cpu.items()
        },
        "cpu_ms_fake": {
            name: _bench.median([c[1] for c in values]) for name, values in cpu.items()
        },
        "runs": rates,
    }


def measure(rounds: int = 80, requests: int = 100, login_rounds: int = 3) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as state, _bench.quiet_logging():
        return {
            "flask": measure_flask(rounds, requests, Path(state)),
            "starlette": measure_starlette(rounds, requests, Path(state)),
            "logins": measure_logins(rounds=login_rounds),
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
    logins = results["logins"]
    lines.append(f"  ASGI logins (ideal {logins['ideal']:.0f}/s, direct driver):")
    for name, rate in logins["rates"].items():
        lines.append(
            f"    {name:28} {rate:6.0f}/s  {logins['of_ideal'][name]:.2f} of ideal"
            f"  x{logins['vs_current'][name]:.2f} vs current;  CPU per login"
            f" {logins['cpu_ms_app_process'][name]:.2f} ms (fake"
            f" {logins['cpu_ms_fake'][name]:.2f} ms)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=80)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--login-rounds", type=int, default=3)
    args = parser.parse_args()
    print(report(measure(args.rounds, args.requests, args.login_rounds)))


if __name__ == "__main__":
    main()
