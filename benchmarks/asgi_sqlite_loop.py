"""Does the SQLite store stall the event loop? Loop lag while clients log in and make requests.

A ticker task measures the lag while many clients log in through ``WxASGIMiddleware`` and make
5 requests each, on the synchronous store called inline and on ``AsyncSQLiteStore``, with the
database quiet and with another process holding the write lock (RESULTS.md, *SQLite and the
event loop*). Run: ``python benchmarks/asgi_sqlite_loop.py [--tasks 200] [--hold 0.2]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import _bench
import report

from wxmiddleware import AsyncSQLiteStore, SQLiteStore, WxASGIMiddleware


class Inline:
    """The synchronous store, each method awaited as if it were asynchronous."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


HOLDER = r"""
import sqlite3, sys, threading, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
hold, stop = float(sys.argv[2]), threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
print("ready", flush=True)
while not stop.is_set():  # take the write lock, keep it `hold` s, let go briefly
    conn.execute("BEGIN IMMEDIATE")
    time.sleep(hold)
    conn.execute("COMMIT")
    time.sleep(hold / 4)
"""


@contextlib.contextmanager
def other_writer(path: Path, hold: float) -> Iterator[None]:
    """Another process holding SQLite's write lock most of the time."""
    command = [_bench.PYTHON, "-c", HOLDER, str(path), str(hold)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(10)


async def client(app: Any, code: str) -> None:
    token = await _bench.asgi_login(app, code)
    for _ in range(5):
        status, _ = await _bench.call_asgi(app, _bench.scope(token))
        assert status == 200, status


async def one_run(kind: str, path: Path, fake: Any, tasks: int) -> Dict[str, float]:
    """Log ``tasks`` clients in at once; the max and p99 loop lag (ms), the seconds taken."""
    store: Any = Inline(SQLiteStore(path, timeout=10.0)) if kind == "inline" else None
    store = store or AsyncSQLiteStore(path)

    async def ok(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def ticker() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            lags.append(time.perf_counter() - last)
            last = time.perf_counter()

    app = WxASGIMiddleware(ok, config=fake.config(), store=store)
    await client(app, fake.codes(1)[0])  # open the connections
    lags: List[float] = []
    done, codes = False, fake.codes(tasks)
    ticking, started = asyncio.ensure_future(ticker()), time.perf_counter()
    await asyncio.gather(*(client(app, code) for code in codes))
    taken, done = time.perf_counter() - started, True
    await ticking
    await _bench.aclose(store.store if kind == "inline" else store)
    lags.sort()
    return {"max_ms": 1000 * lags[-1], "p99_ms": 1000 * lags[int(len(lags) * 0.99)], "s": taken}


def measure(tasks: int = 200, hold: float = 0.2, runs: int = 3) -> Dict[str, Any]:
    results: Dict[str, Any] = {"tasks": tasks, "hold_ms": 1000 * hold, "runs": runs}
    with tempfile.TemporaryDirectory() as tmp, _bench.FakeWeChatProcess() as fake:
        for contended in (False, True):
            for kind in ("inline", "AsyncSQLiteStore"):
                samples = []
                for number in range(runs):
                    path = Path(tmp) / f"{kind}-{contended}-{number}.sqlite3"
                    SQLiteStore(path).close()  # the file and its schema
                    with other_writer(path, hold) if contended else contextlib.nullcontext():
                        samples.append(asyncio.run(one_run(kind, path, fake, tasks)))
                results[f"{kind}, {'lock held' if contended else 'quiet'}"] = {
                    key: _bench.median([s[key] for s in samples]) for key in samples[0]
                }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200, help="concurrent clients")
    parser.add_argument("--hold", type=float, default=0.2, help="seconds the lock is held")
    parser.add_argument("--runs", type=int, default=3, help="runs per setup (median shown)")
    args = parser.parse_args()
    with _bench.quiet_logging():
        print(report.loop_table(measure(args.tasks, args.hold, args.runs)))


if __name__ == "__main__":
    main()
