"""The expiry maintenance of :class:`~wxmiddleware.stores.sqlite.SQLiteStore`: expired rows
deleted in bounded batches, outside every login's transaction, and the WAL checkpointed.

The first write of a process starts a maintenance thread for the store
(:meth:`Maintenance._start_maintenance`), which takes a purge step when one is due: at most
:data:`MAINTENANCE_BATCH` expired rows of one table (sessions, login codes, shared values,
locks), found through that table's expiry index, in one short transaction; so other
processes' logins wait for the write lock at most one batch, however large the store.
:meth:`Maintenance.purge_expired` deletes every expired row now, batch after batch.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
import weakref
from typing import Optional, Tuple

from ..errors import ConfigError
from ._sqlite_db import Database, transaction
from .base import PurgeProgress

logger = logging.getLogger("wxmiddleware")

#: How often (seconds) a process's maintenance looks for expired rows when none were left.
PURGE_INTERVAL = 60.0
#: At most this many expired rows go per maintenance transaction: a few milliseconds of
#: the write lock, however many expired (``benchmarks/scale.py`` measures the longest hold).
MAINTENANCE_BATCH = 200
#: The pause (seconds) between two full batches, in which other writers take the lock.
BATCH_PAUSE = 0.02
#: The environment variable that sets the seconds from a process's first write to its first
#: purge step (default :data:`PURGE_INTERVAL`; a load test sets it short).
PURGE_DELAY_VARIABLE = "WX_SQLITE_PURGE_DELAY"

# One batch of the expired rows of each table, found through the table's expiry index (see
# _sqlite_db.SCHEMA); sessions first. idle_until is never past expires_at
# (session.idle_deadline caps it), so a session is expired exactly when idle_until has passed.
_DELETE_EXPIRED_BATCH = (
    "DELETE FROM wx_sessions WHERE key IN"
    " (SELECT key FROM wx_sessions WHERE idle_until <= ?1 LIMIT ?2)",
    "DELETE FROM wx_codes WHERE key IN (SELECT key FROM wx_codes WHERE expires_at <= ?1 LIMIT ?2)",
    "DELETE FROM wx_values WHERE name IN"
    " (SELECT name FROM wx_values WHERE expires_at <= ?1 LIMIT ?2)",
    "DELETE FROM wx_locks WHERE name IN"
    " (SELECT name FROM wx_locks WHERE expires_at <= ?1 LIMIT ?2)",
)
_DELETE_EXPIRED_SESSIONS = _DELETE_EXPIRED_BATCH[0]


def first_purge_delay() -> float:
    """Seconds from a process's first write to its first purge step: the environment variable
    :data:`PURGE_DELAY_VARIABLE` (a number of seconds, 0 or more), else
    :data:`PURGE_INTERVAL`. Raises :class:`~wxmiddleware.errors.ConfigError` for any other
    value."""
    text = os.environ.get(PURGE_DELAY_VARIABLE, "").strip()
    if not text:
        return PURGE_INTERVAL
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(
            f"{PURGE_DELAY_VARIABLE} must be a number of seconds, 0 or more, got {text!r}"
        )
    return seconds


class Maintenance:
    """The purge and the maintenance thread of a store over ``self._db`` (one SQLite file).

    The thread holds the store only through a weak reference, during a step; it ends when
    the store is closed (:meth:`_stop_maintainer`) or garbage-collected, and does not
    survive ``fork()``: a child's first write starts its own. Raises
    :class:`~wxmiddleware.errors.ConfigError` for an unusable :data:`PURGE_DELAY_VARIABLE`.
    """

    _db: Database

    # Whether this store checkpoints the WAL as it writes and deletes expired rows in a
    # maintenance thread (see _InlineSQLiteStore for the store that does neither).
    _maintenance = True

    def __init__(self) -> None:
        self._next_purge = 0.0
        # Seconds from a process's first write to its first purge step.
        self._first_purge_delay = first_purge_delay()
        # The delete statements of the tables this round of steps has yet to finish: a table
        # whose batch was full goes to the back, one whose batch was not leaves the round.
        # Never empty, and replaced whole: the maintenance thread and _maintain (in another
        # thread) may step at once, at worst visiting a table once more or once less.
        self._round: Tuple[str, ...] = _DELETE_EXPIRED_BATCH
        # The maintenance thread's stop signal, and the process it runs in (threads do not
        # survive fork(): a child's first write starts its own).
        self._stop_maintenance = threading.Event()
        self._maintainer_pid = 0
        self._maintainer: Optional[threading.Thread] = None

    def purge_expired(self, progress: Optional[PurgeProgress] = None) -> int:
        """Delete expired sessions and records now; return how many sessions went.

        The expired rows of each table (sessions, then login codes, shared values and
        locks) are found through the table's expiry index and deleted
        :data:`MAINTENANCE_BATCH` at a time, each batch a short transaction of its own
        followed, while more are left, by a pause of :data:`BATCH_PAUSE` seconds in which
        other writers take the lock: purging never holds the write lock for long, and logins
        in other processes write between its batches, whatever the size of the store.
        ``progress`` is called after each batch of sessions with the count deleted so far.
        """
        purged = 0
        try:
            conn = self._db.connection()
            for statement in _DELETE_EXPIRED_BATCH:
                while True:
                    with transaction(conn):
                        gone = _delete_expired(conn, statement, time.time())
                    if statement == _DELETE_EXPIRED_SESSIONS:
                        purged += gone
                        if progress is not None:
                            progress(purged)
                    if gone < MAINTENANCE_BATCH:
                        break
                    time.sleep(BATCH_PAUSE)
        except sqlite3.Error as exc:
            raise self._db.failure(exc, "purge_expired") from exc
        self._next_purge = time.time() + PURGE_INTERVAL
        return purged

    def _maintain(self) -> None:
        # Checkpoint the WAL (PASSIVE: it never waits) and take one purge step when due: what
        # this store's writes and maintenance thread do, for an _InlineSQLiteStore on the
        # same file (whose writes do neither).
        try:
            conn = self._db.connection()
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            raise self._db.failure(exc, "checkpoint") from exc
        now = time.time()
        if now >= self._next_purge:
            self._purge_step(now)

    def _start_maintenance(self) -> None:
        # The first step comes _first_purge_delay after a process's first write: a process
        # that starts and ends at once never purges.
        self._next_purge = max(self._next_purge, time.time() + self._first_purge_delay)
        self._maintainer_pid = os.getpid()
        self._stop_maintenance = threading.Event()
        thread = threading.Thread(
            target=_maintain_in_background,
            args=(weakref.ref(self), self._stop_maintenance),
            name="wxmiddleware-sqlite-maintenance",
            daemon=True,
        )
        thread.start()
        self._maintainer = thread

    def _purge_step(self, now: float) -> None:
        """One bounded maintenance transaction: up to :data:`MAINTENANCE_BATCH` expired rows
        of the table at the head of the round. While the round has tables left, the next
        step is due at once; when it has none, in :data:`PURGE_INTERVAL` seconds, with every
        table again. A failure (the lock taken, a full disk) is logged and left for the next
        step."""
        pending = self._round
        statement = pending[0]
        try:
            conn = self._db.connection()
            with transaction(conn):
                gone = _delete_expired(conn, statement, now)
        except sqlite3.Error as exc:
            logger.warning("SQLite maintenance deferred: %s", self._db.failure(exc, "purge").detail)
            self._next_purge = now + PURGE_INTERVAL
            return
        # A full batch means more are left: the table comes again after the others.
        left = pending[1:] + ((statement,) if gone == MAINTENANCE_BATCH else ())
        if left:
            self._round, self._next_purge = left, now
        else:
            self._round, self._next_purge = _DELETE_EXPIRED_BATCH, now + PURGE_INTERVAL

    def _stop_maintainer(self) -> None:
        # Stop this process's maintenance thread (the next write starts it again).
        self._stop_maintenance.set()
        self._maintainer_pid = 0
        thread, self._maintainer = self._maintainer, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)  # at most the step it is in: a bounded batch


def _maintain_in_background(store_ref: weakref.ref[Maintenance], stop: threading.Event) -> None:
    """The maintenance thread of one store in one process: a purge step when one is due,
    :data:`BATCH_PAUSE` seconds apart while a round of steps lasts. It holds the store
    only during a step, and ends when the store is closed or garbage-collected."""
    delay = 0.0
    while not stop.wait(delay):
        store = store_ref()
        if store is None:
            return
        now = time.time()
        if now >= store._next_purge:
            store._purge_step(now)
        delay = BATCH_PAUSE if store._next_purge <= now else min(store._next_purge - now, 1.0)
        del store
    store = store_ref()
    if store is not None:
        store._db.close()  # this thread's connection


def _delete_expired(conn: sqlite3.Connection, statement: str, now: float) -> int:
    """Run one of :data:`_DELETE_EXPIRED_BATCH`: delete up to :data:`MAINTENANCE_BATCH` rows
    of its table expired at ``now`` (epoch seconds); how many went."""
    return int(conn.execute(statement, (now, MAINTENANCE_BATCH)).rowcount)
