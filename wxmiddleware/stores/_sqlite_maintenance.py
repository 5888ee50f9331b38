"""The expiry maintenance of :class:`~wxmiddleware.stores.sqlite.SQLiteStore`: expired rows
deleted in bounded batches, outside every login's transaction, and the WAL checkpointed.

The first write of a process starts a maintenance thread for the store
(:meth:`Maintenance._start_maintenance`), which takes a purge step when one is due: at most
:data:`MAINTENANCE_BATCH` expired sessions and the expired records, one short transaction,
so other processes' logins wait for the write lock at most one batch, however large the
store. :meth:`Maintenance.purge_expired` deletes every expired row now, batch after batch.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from typing import Optional

from ._sqlite_db import Database, transaction
from .base import PurgeProgress

logger = logging.getLogger("wxmiddleware")

#: How often (seconds) a process's maintenance looks for expired rows when none were left.
PURGE_INTERVAL = 60.0
#: At most this many expired sessions go per maintenance transaction: a few milliseconds of
#: the write lock, however many expired (``benchmarks/scale.py`` measures the longest hold).
MAINTENANCE_BATCH = 200
#: The pause (seconds) between two full batches, in which other writers take the lock.
BATCH_PAUSE = 0.02

# One batch of expired sessions, found through the idle_until index (see _sqlite_db.SCHEMA).
_DELETE_EXPIRED_BATCH = (
    "DELETE FROM wx_sessions WHERE key IN"
    " (SELECT key FROM wx_sessions WHERE idle_until <= ?1 LIMIT ?2)"
)
# Rows of the small tables (code records, shared values, locks) past their expiry.
_EXPIRED_RECORDS = (
    "DELETE FROM wx_codes WHERE expires_at <= ?",
    "DELETE FROM wx_values WHERE expires_at <= ?",
    "DELETE FROM wx_locks WHERE expires_at <= ?",
)


class Maintenance:
    """The purge and the maintenance thread of a store over ``self._db`` (one SQLite file).

    The thread holds the store only through a weak reference, during a step; it ends when
    the store is closed (:meth:`_stop_maintainer`) or garbage-collected, and does not
    survive ``fork()``: a child's first write starts its own.
    """

    _db: Database

    # Whether this store checkpoints the WAL as it writes and deletes expired rows in a
    # maintenance thread (see _InlineSQLiteStore for the store that does neither).
    _maintenance = True
    # Seconds from a process's first write to its first purge step.
    _first_purge_delay = PURGE_INTERVAL

    def __init__(self) -> None:
        self._next_purge = 0.0
        # The maintenance thread's stop signal, and the process it runs in (threads do not
        # survive fork(): a child's first write starts its own).
        self._stop_maintenance = threading.Event()
        self._maintainer_pid = 0
        self._maintainer: Optional[threading.Thread] = None

    def purge_expired(self, progress: Optional[PurgeProgress] = None) -> int:
        """Delete expired sessions and records now; return how many sessions went.

        Expired sessions are found through the ``idle_until`` index and deleted
        :data:`MAINTENANCE_BATCH` at a time, each batch a short
        transaction of its own, so purging never holds the write lock for long whatever the
        size of the store (logins in other processes wait at most one batch). ``progress``
        is called after each batch with the count deleted so far.
        """
        purged = 0
        try:
            conn = self._db.connection()
            while True:
                with transaction(conn):
                    gone = _delete_expired(conn, time.time(), MAINTENANCE_BATCH)
                purged += gone
                if progress is not None:
                    progress(purged)
                if gone < MAINTENANCE_BATCH:
                    break
            with transaction(conn):
                self._purge_records(conn, time.time())
        except sqlite3.Error as exc:
            raise self._db.failure(exc, "purge_expired") from exc
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
        # The first step comes PURGE_INTERVAL after a process's first write, as every later
        # one does: a process that starts and ends at once never purges.
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
        """One bounded maintenance transaction: up to :data:`MAINTENANCE_BATCH` expired
        sessions and the expired records. A full batch means more are left: the next step is
        due at once; else in :data:`PURGE_INTERVAL` seconds. A failure (the lock taken, a
        full disk) is logged and left for the next step."""
        try:
            conn = self._db.connection()
            with transaction(conn):
                gone = _delete_expired(conn, now, MAINTENANCE_BATCH)
                self._purge_records(conn, now)
        except sqlite3.Error as exc:
            logger.warning("SQLite maintenance deferred: %s", self._db.failure(exc, "purge").detail)
            self._next_purge = now + PURGE_INTERVAL
            return
        if gone == MAINTENANCE_BATCH:
            self._next_purge = now

    def _stop_maintainer(self) -> None:
        # Stop this process's maintenance thread (the next write starts it again).
        self._stop_maintenance.set()
        self._maintainer_pid = 0
        thread, self._maintainer = self._maintainer, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)  # at most the step it is in: a bounded batch

    def _purge_records(self, conn: sqlite3.Connection, now: float) -> None:
        self._next_purge = now + PURGE_INTERVAL
        for statement in _EXPIRED_RECORDS:
            conn.execute(statement, (now,))


def _maintain_in_background(store_ref: weakref.ref[Maintenance], stop: threading.Event) -> None:
    """The maintenance thread of one store in one process: a purge step when one is due,
    :data:`BATCH_PAUSE` seconds apart while expired rows are left over. It holds the store
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


def _delete_expired(conn: sqlite3.Connection, now: float, limit: int) -> int:
    """Delete up to ``limit`` sessions expired at ``now`` (epoch seconds); how many went."""
    return int(conn.execute(_DELETE_EXPIRED_BATCH, (now, limit)).rowcount)
