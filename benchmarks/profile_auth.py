"""Where an authenticated request's time goes in the middleware, and why SQLite costs more in Flask.

1. **Profiles** (cProfile) of the authenticated path of WxMiddleware on the memory store and
   on SQLite, and of WxASGIMiddleware on the memory store, each in front of a trivial inner
   app so that only the middleware's own work shows: the top functions by own time.
2. **Steps, alone and in context**: ``SQLiteStore.get`` and its parts timed back to back
   (everything hot in the CPU caches), inside a Flask request loop (the same calls, between
   Flask's work), and after touching 8 MB of memory (caches evicted on purpose). The same
   code costs about twice as much between Flask's work as back to back: fewer distinct
   code paths per request (no sha256, no JSON parsing, no new cursor) is what pays.

Run: ``python benchmarks/profile_auth.py``
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import _bench
import overhead

from wxmiddleware import AsyncMemoryStore, MemoryStore, SQLiteStore, WxASGIMiddleware, WxMiddleware
from wxmiddleware.session import WxSession, new_token, token_key
from wxmiddleware.stores import sqlite as sqlite_module

IDLE = overhead.IDLE


def _top(profile: cProfile.Profile, calls: int, limit: int = 12) -> List[Tuple[str, float, float]]:
    """``(function, own µs per request, cumulative µs per request)``, by own time."""
    stats = pstats.Stats(profile, stream=io.StringIO())
    rows = []
    for (filename, line, name), (_, _, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        label = f"{name} ({where}:{line})" if line else name
        rows.append((label, 1e6 * own / calls, 1e6 * cumulative / calls))
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows[:limit]


def _trivial_wsgi(environ: Any, start_response: Any) -> List[bytes]:
    start_response("200 OK", [])
    return [b""]


async def _trivial_asgi(scope: Any, receive: Any, send: Any) -> None:
    return None


def profiles(state: Path, calls: int = 20000) -> Dict[str, List[Tuple[str, float, float]]]:
    token = new_token()
    memory = MemoryStore()
    sqlite = SQLiteStore(state / "profile.sqlite3")
    for store in (memory, sqlite):
        store.save(token, overhead.new_session(), IDLE)
    environ = overhead.flask_environ({"3rd-session": token})
    results = {}
    for name, store in (
        ("WxMiddleware + MemoryStore", memory),
        ("WxMiddleware + SQLiteStore", sqlite),
    ):
        app = WxMiddleware(_trivial_wsgi, config=overhead.CONFIG, store=store)
        for _ in range(500):
            app(environ.copy(), lambda *a: None)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(calls):
            app(environ.copy(), lambda *a: None)
        profile.disable()
        results[name] = _top(profile, calls)
    sqlite.close()

    async def asgi() -> List[Tuple[str, float, float]]:
        store = AsyncMemoryStore()
        await store.save(token, overhead.new_session(), IDLE)
        app = WxASGIMiddleware(_trivial_asgi, config=overhead.CONFIG, store=store)
        scope = overhead.asgi_scope({"3rd-session": token})

        async def receive() -> Dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            pass

        for _ in range(500):
            await app(dict(scope), receive, send)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(calls):
            await app(dict(scope), receive, send)
        profile.disable()
        return _top(profile, calls)

    results["WxASGIMiddleware + AsyncMemoryStore"] = asyncio.run(asgi())
    return results


def steps_in_context(state: Path, calls: int = 3000) -> Dict[str, Dict[str, float]]:
    """µs per call of SQLiteStore.get's parts: back to back, in a Flask loop, caches evicted."""
    token = new_token()
    store = SQLiteStore(state / "steps.sqlite3")
    store.save(token, overhead.new_session(), IDLE)
    key = token_key(token)
    conn = store._conn()
    value = conn.execute(sqlite_module._GET, (key,)).fetchall()[0][0]
    steps: Dict[str, Callable[[], Any]] = {
        "SQLiteStore.get (whole)": lambda: store.get(token, IDLE),
        "token_key (sha256)": lambda: token_key(token),
        "_conn() (thread-local + getpid)": store._conn,
        "execute + fetchall (the SELECT)": lambda: conn.execute(
            sqlite_module._GET, (key,)
        ).fetchall(),
        "WxSession.from_json": lambda: WxSession.from_json(value),
    }
    bare, _ = overhead.flask_apps()
    flask_request = overhead.wsgi_runner(bare, overhead.flask_environ({}))
    junk = bytearray(8 * 1024 * 1024)

    def evict() -> None:
        junk[::64] = b"\x01" * (len(junk) // 64)

    contexts: Dict[str, Callable[[], Any]] = {
        "back to back": lambda: None,
        "between Flask requests": lambda: flask_request(1),
        "after touching 8 MB": evict,
    }
    clock = time.perf_counter
    samples: Dict[str, Dict[str, List[float]]] = {
        step: {context: [] for context in contexts} for step in steps
    }
    for call in steps.values():  # warm up
        for _ in range(200):
            call()
    for _ in range(3):  # interleaved, so that a burst of background load hits every cell
        for context, between in contexts.items():
            count = calls if context != "after touching 8 MB" else calls // 6
            for step, call in steps.items():
                total = 0.0
                for _ in range(count):
                    between()
                    started = clock()
                    call()
                    total += clock() - started
                samples[step][context].append(1e6 * total / count)
    results = {
        step: {context: _bench.median(values) for context, values in by_context.items()}
        for step, by_context in samples.items()
    }
    store.close()
    return results


def measure() -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as state, _bench.quiet_logging():
        return {"profiles": profiles(Path(state)), "steps": steps_in_context(Path(state))}


def report(results: Dict[str, Any]) -> str:
    lines = []
    for name, rows in results["profiles"].items():
        lines.append(f"  {name} (cProfile, per request; the profiler inflates small calls):")
        for label, own, cumulative in rows:
            lines.append(f"    {own:6.2f} µs own {cumulative:7.2f} µs cum  {label}")
    lines.append("  SQLiteStore.get's parts, µs per call:")
    contexts = list(next(iter(results["steps"].values())))
    lines.append("    " + " " * 34 + "".join(f"{c:>24}" for c in contexts))
    for step, by_context in results["steps"].items():
        lines.append(f"    {step:34}" + "".join(f"{by_context[c]:24.1f}" for c in contexts))
    return "\n".join(lines)


def main() -> None:
    print(report(measure()))


if __name__ == "__main__":
    main()
