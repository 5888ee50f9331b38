"""SQLite's expiry maintenance as the store grows: bounded batches, outside the writes.

Expired rows of every table (sessions, login codes, shared values, locks) are found through
the table's expiry index and deleted a batch at a time, each batch its own transaction, by a
maintenance thread outside every write's transaction, so no transaction holds SQLite's write
lock for a whole purge. While another process keeps logging users in, a purge removes every
expired row and no live one.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Callable, Dict, List, Set, Tuple

import pytest

from tests.stores.support import SCOPE, make_session
from wxmiddleware.errors import ConfigError
from wxmiddleware.session import new_token
from wxmiddleware.stores import _sqlite_maintenance
from wxmiddleware.stores.sqlite import MAINTENANCE_BATCH, PURGE_INTERVAL, SQLiteStore
from wxmiddleware.testing.bulk import fill_sqlite_store

IDLE = 7200
#: The tables with an expiry, each with the column it expires by and its primary key.
EXPIRING = {
    "wx_sessions": ("idle_until", "key"),
    "wx_codes": ("expires_at", "key"),
    "wx_values": ("expires_at", "name"),
    "wx_locks": ("expires_at", "name"),
}


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


def count(path: Path, where: str = "1", table: str = "wx_sessions") -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])


def expired_rows(path: Path, now: float) -> Tuple[int, ...]:
    """How many rows of each of EXPIRING's tables are expired at ``now``."""
    return tuple(
        count(path, f"{column} <= {now}", table) for table, (column, _) in EXPIRING.items()
    )


def add_records(store: SQLiteStore, expired: Dict[str, int], live: int) -> Dict[str, Set[str]]:
    """Code claims, shared values and locks written through ``store``: ``expired[table]``
    already expired and ``live`` live ones in each table; returns the live rows' keys."""
    kept: Dict[str, Set[str]] = {"wx_codes": set(), "wx_values": set(), "wx_locks": set()}
    for table, ttl, n in [(t, -1, expired[t]) for t in kept] + [(t, 3600, live) for t in kept]:
        for _ in range(n):
            name = f"{table}-{new_token()}"
            if table == "wx_codes":
                store.claim_code(name, ttl)
            elif table == "wx_values":
                store.set_value(name, "v", ttl)
            else:
                assert store.acquire_lock(name, ttl) is not None
            if ttl > 0:
                kept[table].add(name)
    return kept


def remaining(path: Path, table: str) -> Set[str]:
    key = EXPIRING[table][1]
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute(f"SELECT {key} FROM {table}")}


@pytest.mark.parametrize(
    "statement",
    _sqlite_maintenance._DELETE_EXPIRED_BATCH,
    ids=lambda statement: statement.split()[2],
)
def test_each_batch_finds_its_expired_rows_through_an_index(tmp_path: Path, statement: str) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    conn = store._db.connection()
    table = statement.split()[2]
    index = f"{table}_{EXPIRING[table][0]}"
    plan = str(conn.execute(f"EXPLAIN QUERY PLAN {statement}", (time.time(), 1)).fetchall())
    assert f"INDEX {index} (" in plan, plan
    assert "SCAN" not in plan, plan  # no pass over the whole table
    store.close()


def test_a_file_made_before_the_record_indexes_gains_them(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = SQLiteStore(path)
    first.claim_code("c-1", 300)
    first.close()
    indexes = ["wx_codes_expires_at", "wx_values_expires_at", "wx_locks_expires_at"]
    with sqlite3.connect(path) as db:
        for index in indexes:
            db.execute(f"DROP INDEX {index}")
    store = SQLiteStore(path)
    store.claim_code("c-2", 300)  # opening the file makes the schema
    with sqlite3.connect(path) as db:
        found = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert set(indexes) <= found
    store.close()


def test_purge_removes_every_expired_record_and_no_live_one_in_bounded_batches(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    expired = {
        "wx_codes": 2 * MAINTENANCE_BATCH + 31,
        "wx_values": MAINTENANCE_BATCH + 5,
        "wx_locks": MAINTENANCE_BATCH + 3,
    }
    live = add_records(store, expired, live=20)
    conn = store._db.connection()
    # The rows each transaction of the purge deleted: its changes between BEGIN and COMMIT.
    began: List[int] = []
    deleted: List[int] = []

    def traced(statement: str) -> None:
        if statement == "BEGIN IMMEDIATE":
            began.append(conn.total_changes)
        elif statement == "COMMIT":
            deleted.append(conn.total_changes - began[-1])

    conn.set_trace_callback(traced)
    assert store.purge_expired() == 0
    conn.set_trace_callback(None)
    # Sessions (none), then each table a bounded batch per transaction, in several.
    full = MAINTENANCE_BATCH
    assert deleted == [0, full, full, 31, full, 5, full, 3]
    for table, keys in live.items():
        assert remaining(path, table) == keys
    store.close()


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
    live_records = add_records(
        store, {"wx_codes": 2 * MAINTENANCE_BATCH + 1, "wx_values": 3, "wx_locks": 0}, live=5
    )
    steps: List[Tuple[int, ...]] = []
    original = store._purge_step

    def counted(now: float) -> None:
        steps.append(expired_rows(path, now))
        original(now)

    store._purge_step = counted  # type: ignore[method-assign]
    store.save(new_token(), make_session("o-new"), IDLE, SCOPE)
    wait_until(lambda: sum(expired_rows(path, time.time())) == 0)
    wait_until(lambda: store._next_purge > time.time() + PURGE_INTERVAL / 2)
    steps.append(expired_rows(path, time.time()))
    # Each step is one transaction over one table, of at most MAINTENANCE_BATCH rows.
    for before, after in zip(steps, steps[1:]):
        changed = [b - a for b, a in zip(before, after) if b != a]
        assert len(changed) <= 1 and all(0 < n <= MAINTENANCE_BATCH for n in changed), steps
    # The tables take turns: the codes were gone while expired sessions were left.
    assert any(codes == 0 and sessions > 0 for sessions, codes, _, _ in steps), steps
    assert count(path) == 3 + 1
    for token in live:
        assert store.get(token, IDLE, SCOPE) is not None
    for table, keys in live_records.items():
        assert remaining(path, table) == keys
    thread = store._maintainer
    assert thread is not None and thread.is_alive()
    store.close()  # stops its maintenance thread, and waits for it
    assert not thread.is_alive()


def test_the_first_step_comes_after_the_delay_the_environment_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    fill(path, 1, 10)
    monkeypatch.setenv("WX_SQLITE_PURGE_DELAY", "0.5")
    store = SQLiteStore(path)
    store.save(new_token(), make_session("o-new"), IDLE, SCOPE)  # starts the maintenance
    wait_until(lambda: count(path, f"idle_until <= {time.time()}") == 0)
    assert count(path) == 2
    store.close()


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf"])
def test_an_unusable_purge_delay_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("WX_SQLITE_PURGE_DELAY", value)
    with pytest.raises(ConfigError, match="WX_SQLITE_PURGE_DELAY"):
        SQLiteStore(tmp_path / "s.db")


def test_without_the_variable_the_first_step_waits_the_purge_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WX_SQLITE_PURGE_DELAY", raising=False)
    assert SQLiteStore(tmp_path / "s.db")._first_purge_delay == PURGE_INTERVAL
    monkeypatch.setenv("WX_SQLITE_PURGE_DELAY", "2.5")
    assert SQLiteStore(tmp_path / "s.db")._first_purge_delay == 2.5


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


def _keep_logging_in(path: str, stop: Event, tokens: multiprocessing.Queue[str]) -> None:
    # Logins paced like a busy app's (about 500 a second), each token sent once written,
    # until told to stop; then an empty string.
    store = SQLiteStore(path, timeout=10.0)
    while not stop.is_set():
        token = new_token()
        store.save(token, make_session(f"w-{token[:8]}"), IDLE, SCOPE)
        tokens.put(token)
        time.sleep(0.002)
    tokens.put("")
    store.close()


def test_purge_removes_every_expired_row_and_no_live_one_while_another_process_writes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    backlog = 20 * MAINTENANCE_BATCH + 17
    live_tokens = fill(path, 50, backlog)
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = context.Queue()
    stop = context.Event()
    writer = context.Process(target=_keep_logging_in, args=(str(path), stop, queue))
    writer.start()
    written: List[str] = []
    # The writer's rows after each batch of the purge.
    theirs_after_batch: List[int] = []
    try:
        written.append(queue.get(timeout=60))  # the writer is up and has written
        store = SQLiteStore(path, timeout=10.0)
        purged = store.purge_expired(
            lambda _: theirs_after_batch.append(count(path, "openid LIKE 'w-%'"))
        )
    finally:
        stop.set()
        while True:
            token = queue.get(timeout=60)
            if not token:
                break
            written.append(token)
        writer.join(30)
    assert writer.exitcode == 0
    assert purged == backlog
    # One report per batch of MAINTENANCE_BATCH: the full ones and the rest.
    assert len(theirs_after_batch) == backlog // MAINTENANCE_BATCH + 1
    # The other process wrote between the purge's batches, not only before or after.
    assert theirs_after_batch[-1] > theirs_after_batch[0], theirs_after_batch
    assert count(path, f"idle_until <= {time.time()}") == 0
    assert count(path) == len(live_tokens) + len(written)
    for token in live_tokens + written:
        assert store.get(token, IDLE, SCOPE) is not None
    store.close()
