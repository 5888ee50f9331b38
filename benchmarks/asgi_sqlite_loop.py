"""Does the SQLite store stall the event loop? Loop lag under a login-like workload.

A ticker task measures the event loop's lag (the longest and the 99th-percentile gap between
two turns of an ``await asyncio.sleep(0)`` loop) while many concurrent tasks do what logins
and authenticated requests do to the store (claim a code, save a session, look it up). Two
ways to call the store are compared, each with the database quiet and with another process
holding SQLite's write lock most of the time, as a busy worker process next door would:

- ``inline``: the synchronous :class:`SQLiteStore` called straight from the event loop;
- ``AsyncSQLiteStore``: reads inline; writes inline on a connection that never waits while
  the write lock is free, in its thread when another writer holds the lock.

Run: ``python benchmarks/asgi_sqlite_loop.py [--tasks 200] [--hold 0.2]``
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sqlite3
import statistics
import tempfile
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, List, Optional, Tuple

from wxmiddleware.session import WxSession, code_key, new_token, seal_token
from wxmiddleware.stores import SQLiteStore
from wxmiddleware.stores.aio import AsyncSQLiteStore

IDLE = 7200


class InlineStore:
    """The synchronous store called from the event loop, as a naive adapter would."""

    def __init__(self, store: SQLiteStore) -> None:
        self.sync = store

    async def get(self, token: str, idle_ttl: int) -> Optional[WxSession]:
        return self.sync.get(token, idle_ttl)

    async def save(self, *args: Any) -> None:
        self.sync.save(*args)

    async def claim_code(self, key: str, ttl: int) -> Optional[str]:
        return self.sync.claim_code(key, ttl)

    async def close(self) -> None:
        self.sync.close()


def hold_write_lock(path: str, hold: float, ready: Event, stop: Event) -> None:
    """Another process's writer: take the write lock, keep it ``hold`` s, let go briefly."""
    conn = sqlite3.connect(path, isolation_level=None)
    ready.set()
    while not stop.is_set():
        conn.execute("BEGIN IMMEDIATE")
        time.sleep(hold)
        conn.execute("COMMIT")
        time.sleep(hold / 4)
    conn.close()


async def login_like(store: Any, number: int) -> None:
    code = f"code-{number}-{new_token()}"
    key = code_key(code)
    token = new_token()
    now = time.time()
    session = WxSession(f"o-{number}", "sk", None, now, now + 86400)
    await store.claim_code(key, 300)
    await store.save(token, session, IDLE, key, seal_token(code, token))
    for _ in range(5):
        await store.get(token, IDLE)


async def measure(store: Any, tasks: int) -> Tuple[float, float, float]:
    """Run the workload; return (max lag, p99 lag, seconds taken)."""
    lags: List[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0)
            now = time.perf_counter()
            lags.append(now - last)
            last = now

    ticking = asyncio.ensure_future(ticker())
    started = time.perf_counter()
    await asyncio.gather(*(login_like(store, n) for n in range(tasks)))
    taken = time.perf_counter() - started
    done.set()
    await ticking
    lags.sort()
    return lags[-1], lags[int(len(lags) * 0.99)], taken


def run(kind: str, path: Path, tasks: int) -> Tuple[float, float, float]:
    sync = SQLiteStore(path, timeout=10.0)
    store = InlineStore(sync) if kind == "inline" else AsyncSQLiteStore(sync)

    async def main() -> Tuple[float, float, float]:
        await login_like(store, -1)  # create the database and open the connections
        try:
            return await measure(store, tasks)
        finally:
            await store.close()

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200, help="concurrent login-like tasks")
    parser.add_argument("--hold", type=float, default=0.2, help="seconds the lock is held")
    parser.add_argument("--runs", type=int, default=3, help="runs per setup (median shown)")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    print(
        f"{args.tasks} concurrent tasks, each: claim a code, save a session, 5 lookups;"
        f" the other writer holds the lock {args.hold * 1000:.0f} ms at a time"
    )
    print(f"  {'store':18} {'other writer':13} {'max lag':>9} {'p99 lag':>9} {'time':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for contended in (False, True):
            for kind in ("inline", "AsyncSQLiteStore"):
                results = []
                for run_number in range(args.runs):
                    path = Path(tmp) / f"{kind}-{contended}-{run_number}.sqlite3"
                    SQLiteStore(path).purge_expired()  # create the file and its schema
                    stop, ready = context.Event(), context.Event()
                    holder = context.Process(
                        target=hold_write_lock, args=(str(path), args.hold, ready, stop)
                    )
                    if contended:
                        holder.start()
                        ready.wait()
                    try:
                        results.append(run(kind, path, args.tasks))
                    finally:
                        stop.set()
                        if contended:
                            holder.join()
                worst, p99, taken = (statistics.median(column) for column in zip(*results))
                print(
                    f"  {kind:18} {'holds lock' if contended else 'none':13}"
                    f" {worst * 1000:7.1f}ms {p99 * 1000:7.2f}ms {taken:7.2f}s"
                )


if __name__ == "__main__":
    main()
