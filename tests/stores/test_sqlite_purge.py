"""SQLite's expiry maintenance as the store grows: bounded batches, outside the writes.

Expired rows are found through the ``idle_until`` index and deleted a batch at a time, each
batch its own transaction, by a maintenance thread outside every write's transaction, so no
transaction holds SQLite's write lock for a whole purge. While another process keeps logging
users in, a purge removes every expired row and no live one.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path
from typing import Callable, List

from tests.stores.support import SCOPE, make_session
from wxmiddleware.session import new_token
from wxmiddleware.stores.base import PURGE_BATCH
from wxmiddleware.stores.sqlite import MAINTENANCE_BATCH, PURGE_INTERVAL, SQLiteStore
from wxmiddleware.testing.bulk import fill_sqlite_store

IDLE = 7200


def fill(path: Path, live: int, expired: int) -> List[str]:
    """``live`` sessions saved through the store, then ``expired`` expired copies of them;
    returns the live sessions' tokens."""
    store = SQLiteStore(path)
    tokens = [new_token() for _ in range(live)]
    for token in tokens:
        store.save(token, make_session(f"o-{token[:8]}"), IDLE, SCOPE)
    store.close()  # and its maintenance thread, before the expired rows arrive
    assert fill_sqlite_store(path, live + expired, expired_share=1.0) == expired
    return tokens


def count(path: Path, where: str = "1") -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT count(*) FROM wx_sessions WHERE {where}").fetchone()[0])


def test_the_expiry_index_exists(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    fill(path, 1, 1)
    with sqlite3.connect(path) as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT key FROM wx_sessions WHERE idle_until <= ?", (time.time(),)
        ).fetchall()
    assert "wx_sessions_idle_until" in str(plan)


def wait_until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)


def test_the_maintenance_thread_purges_in_batches_outside_the_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    live = fill(path, 3, 5 * MAINTENANCE_BATCH + 7)
    store = SQLiteStore(path)
    store._first_purge_delay = 0.0  # not PURGE_INTERVAL after the first write
    steps: List[int] = []
    original = store._purge_step

    def counted(now: float) -> None:
        steps.append(count(path, f"idle_until <= {now}"))
        original(now)

    store._purge_step = counted  # type: ignore[method-assign]
    store.save(new_token(), make_session("o-new"), IDLE, SCOPE)
    wait_until(lambda: count(path, f"idle_until <= {time.time()}") == 0)
    # One bounded batch per step: six steps for 5 x MAINTENANCE_BATCH + 7 expired rows.
    assert steps[:6] == [5 * MAINTENANCE_BATCH + 7 - n * MAINTENANCE_BATCH for n in range(6)]
    wait_until(lambda: store._next_purge > time.time() + PURGE_INTERVAL / 2)
    assert count(path) == 3 + 1
    for token in live:
        assert store.get(token, IDLE, SCOPE) is not None
    thread = store._maintainer
    assert thread is not None and thread.is_alive()
    store.close()  # stops its maintenance thread, and waits for it
    assert not thread.is_alive()


def test_a_failed_step_never_fails_the_write(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    fill(path, 1, 10)
    store = SQLiteStore(path, timeout=0.0)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        store._purge_step(time.time())  # the lock is taken: deferred, not raised
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert count(path) == 11
    store.save(new_token(), make_session("o-after"), IDLE, SCOPE)
    assert count(path) == 12  # deferred by PURGE_INTERVAL, the save went through


def _keep_logging_in(path: str, seconds: float, tokens: multiprocessing.Queue[str]) -> None:
    store = SQLiteStore(path, timeout=10.0)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        token = new_token()
        store.save(token, make_session(f"o-{token[:8]}"), IDLE, SCOPE)
        tokens.put(token)
    tokens.put("")
    store.close()


def test_purge_removes_every_expired_row_and_no_live_one_while_another_process_writes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    live_tokens = fill(path, 50, 3 * PURGE_BATCH + 17)
    batches: List[int] = []
    queue: multiprocessing.Queue[str] = multiprocessing.get_context("spawn").Queue()
    writer = multiprocessing.get_context("spawn").Process(
        target=_keep_logging_in, args=(str(path), 3.0, queue)
    )
    writer.start()
    try:
        store = SQLiteStore(path, timeout=10.0)
        purged = store.purge_expired(batches.append)
        written: List[str] = []
        while True:
            token = queue.get(timeout=30)
            if not token:
                break
            written.append(token)
    finally:
        writer.join(30)
    assert writer.exitcode == 0
    assert purged == 3 * PURGE_BATCH + 17
    # One report per batch of MAINTENANCE_BATCH: the full ones and the rest.
    assert len(batches) == (3 * PURGE_BATCH + 17) // MAINTENANCE_BATCH + 1
    assert count(path, f"idle_until <= {time.time()}") == 0
    assert written, "the other process wrote nothing during the purge"
    for token in live_tokens + written:
        assert store.get(token, IDLE, SCOPE) is not None
