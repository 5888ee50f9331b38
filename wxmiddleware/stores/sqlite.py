"""SQLiteStore: the embedded default store.

Zero setup, shared by every worker process on one machine (gunicorn ``-w 4``), and it
survives restarts. The database runs in WAL mode so readers never wait for the writer;
sessions are keyed by :func:`~wxmiddleware.session.token_key`, so the file holds no usable
token. Expired rows are deleted lazily (see :meth:`SQLiteStore.purge_expired`).

Shared values and locks (:meth:`SQLiteStore.set_value`, :meth:`SQLiteStore.acquire_lock`)
are rows with an expiry, in tables of their own, so every process on the machine sees them.
"""

from __future__ import annotations

import os
import pathlib
import re
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager, suppress
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

from ..errors import StoreUnavailable
from ..session import WxSession, short_hash, token_key
from .base import PENDING, PURGE_BATCH, PurgeProgress, SessionInfo, new_lock_owner

#: How often (seconds) one process's writes also delete expired rows.
PURGE_INTERVAL = 60.0
#: How many recently parsed sessions a store keeps per process (about 0.5 KB each).
RECENT_SESSIONS = 1024

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS wx_sessions (
        key TEXT PRIMARY KEY NOT NULL,
        openid TEXT NOT NULL,
        value TEXT NOT NULL,
        idle_until REAL NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS wx_sessions_openid ON wx_sessions (openid)",
    """CREATE TABLE IF NOT EXISTS wx_codes (
        key TEXT PRIMARY KEY NOT NULL,
        sealed TEXT NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS wx_values (
        name TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS wx_locks (
        name TEXT PRIMARY KEY NOT NULL,
        owner TEXT NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
)
_GET = "SELECT value, idle_until, expires_at FROM wx_sessions WHERE key = ?"
# The guard keeps a slow writer from moving a deadline that another process slid further.
_SLIDE = "UPDATE wx_sessions SET idle_until = ?1 WHERE key = ?2 AND idle_until < ?1"
_INSERT = (
    "INSERT OR REPLACE INTO wx_sessions (key, openid, value, idle_until, expires_at)"
    " VALUES (?, ?, ?, ?, ?)"
)
_LIVE_CODE = "SELECT sealed FROM wx_codes WHERE key = ? AND expires_at > ?"
# One batch of purge_expired's walk over the sessions, in key order.
_SESSION_BATCH = (
    "SELECT key, idle_until, expires_at FROM wx_sessions WHERE key > ? ORDER BY key LIMIT ?"
)
# The expiry is checked again: another process may have slid the deadline meanwhile.
_DELETE_EXPIRED_SESSION = (
    "DELETE FROM wx_sessions WHERE key = ?1 AND (idle_until <= ?2 OR expires_at <= ?2)"
)
# Rows of the small tables (code records, shared values, locks) past their expiry.
_EXPIRED_RECORDS = (
    "DELETE FROM wx_codes WHERE expires_at <= ?",
    "DELETE FROM wx_values WHERE expires_at <= ?",
    "DELETE FROM wx_locks WHERE expires_at <= ?",
)


class Lookup(NamedTuple):
    """What :meth:`SQLiteStore.lookup` found: the session and the idle deadline to write."""

    session: WxSession
    key: str
    #: The new idle deadline, or ``None`` when the stored one is close enough.
    slide_to: Optional[float]


class _Local(threading.local):
    conn: Optional[sqlite3.Connection] = None
    # Set with conn, and only read after _conn(): the cursor of conn, reused by every lookup.
    cursor: sqlite3.Cursor
    pid: int = 0


# Connections opened by a parent process and found in a child. SQLite must not close them
# there (its cleanup could delete the parent's WAL), so they are kept, unused, for good.
_INHERITED: List[sqlite3.Connection] = []
_LIVE_STORES: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()


def _close_before_fork() -> None:
    # A connection that crosses fork() leaves SQLite's per-process lock bookkeeping in the
    # child believing it holds locks it does not; closing the forking thread's connections
    # first lets both processes reopen cleanly.
    for store in list(_LIVE_STORES):
        store.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_close_before_fork)


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so a read-then-write cannot interleave with
    # another process's and never fails half-way with SQLITE_BUSY_SNAPSHOT.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class SQLiteBusy(StoreUnavailable):
    """A write found SQLite's write lock taken for its whole ``timeout``: nothing was written."""


class SQLiteStore:
    """A :class:`~wxmiddleware.stores.base.SessionStore` in one SQLite file.

    Every process and thread that uses the store opens its own connection on first use (a
    store created before ``fork()`` opens fresh ones in each child), so one instance may be
    created at import time and shared. The parent directory and the schema are created on
    first use. A relative ``path`` is resolved against the working directory at construction.

    ``timeout`` is how long (seconds) a write waits for another process's write before the
    store gives up with :class:`~wxmiddleware.errors.StoreUnavailable`. Every
    :class:`sqlite3.Error` (locked, unwritable, full or corrupt database) is raised as
    :class:`~wxmiddleware.errors.StoreUnavailable` whose ``detail`` (for the log, not the
    client) names the cause, naming a session only by a short hash of its key; a write that
    found the lock taken raises the subclass :class:`SQLiteBusy`.

    With ``maintenance=False`` the store's writes never checkpoint the WAL (which may
    ``fsync``) nor purge expired rows: another store on the same file must call
    :meth:`maintain` now and then (:class:`~wxmiddleware.AsyncSQLiteStore` does, so that
    the writes it runs on the event loop stay short).
    """

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        timeout: float = 2.0,
        maintenance: bool = True,
    ) -> None:
        self._path = pathlib.Path(os.path.abspath(path))
        self._timeout = timeout
        self._maintenance = maintenance
        self._local = _Local()
        self._schema_ready = False
        self._next_purge = 0.0
        # token -> (key, stored JSON, parsed session): a lookup whose row still holds that
        # JSON skips hashing the token and parsing the JSON. The SELECT always runs, so
        # expiry, logout and revocation in any process take effect at once.
        self._recent: Dict[str, Tuple[str, str, WxSession]] = {}
        _LIVE_STORES.add(self)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self._path)!r})"

    @property
    def path(self) -> pathlib.Path:
        """The absolute path of the database file."""
        return self._path

    def get(self, token: str, idle_ttl: int) -> Optional[WxSession]:
        """Return the live session for ``token`` and slide its idle timeout, or ``None``.

        The idle timeout slides with a granularity of ``min(60, idle_ttl / 10)`` seconds: the
        new deadline is written only when it would move by more than that, so most calls cost
        one indexed SELECT and no write. A session may therefore end up to that many seconds
        before ``idle_ttl`` has passed since its last use.
        """
        found = self.lookup(token, idle_ttl)
        if found is None:
            return None
        if found.slide_to is not None:
            self.slide(found)
        return found.session

    def lookup(self, token: str, idle_ttl: int) -> Optional[Lookup]:
        """The read step of :meth:`get`: it never waits for a writer (WAL mode).

        Returns the live session and, when its idle deadline should move, the new deadline
        for :meth:`slide`.
        """
        recent = self._recent
        cached = recent.get(token)
        key = token_key(token) if cached is None else cached[0]
        try:
            self._conn()
            # fetchall() steps the statement to its end, which closes the read transaction
            # before the optional UPDATE (an open one could fail with SQLITE_BUSY_SNAPSHOT).
            rows = self._local.cursor.execute(_GET, (key,)).fetchall()
        except sqlite3.Error as exc:
            raise self._fail(exc, "get", "session", key) from exc
        if not rows:
            if cached is not None:
                recent.pop(token, None)
            return None
        value, idle_until, expires_at = rows[0]
        now = time.time()
        if now >= idle_until or now >= expires_at:
            return None
        if cached is not None and cached[1] == value:
            session = cached[2]
        else:
            session = WxSession.from_json(value)
            if len(recent) >= RECENT_SESSIONS:
                # The oldest entry goes; another thread may have just removed it.
                with suppress(StopIteration, KeyError, RuntimeError):
                    del recent[next(iter(recent))]
            recent[token] = (key, value, session)
        new_idle_until = min(now + idle_ttl, expires_at)
        moved = new_idle_until - idle_until > min(60.0, idle_ttl / 10)
        return Lookup(session, key, new_idle_until if moved else None)

    def slide(self, found: Lookup) -> None:
        """The write step of :meth:`get`: move the idle deadline (it may wait for a writer)."""
        try:
            self._conn().execute(_SLIDE, (found.slide_to, found.key))
        except sqlite3.Error as exc:
            raise self._fail(exc, "get", "session", found.key) from exc

    def save(
        self,
        token: str,
        session: WxSession,
        idle_ttl: int,
        code_key: Optional[str] = None,
        sealed_token: Optional[str] = None,
    ) -> None:
        """Store a new session and, in the same transaction, complete a code claim.

        At most once per :data:`PURGE_INTERVAL` seconds per process, the transaction also
        deletes expired sessions and code records.
        """
        key = token_key(token)
        try:
            conn = self._conn()
            with _transaction(conn):
                now = time.time()
                if self._maintenance and now >= self._next_purge:
                    self._purge(conn, now)
                idle_until = min(now + idle_ttl, session.expires_at)
                conn.execute(
                    _INSERT,
                    (key, session.openid, session.to_json(), idle_until, session.expires_at),
                )
                if code_key is not None and sealed_token is not None:
                    conn.execute(
                        "UPDATE wx_codes SET sealed = ? WHERE key = ?", (sealed_token, code_key)
                    )
        except sqlite3.Error as exc:
            raise self._fail(exc, "save", "session", key) from exc

    def delete(self, token: str) -> bool:
        """End one session; ``True`` if it existed."""
        key = token_key(token)
        try:
            cursor = self._conn().execute("DELETE FROM wx_sessions WHERE key = ?", (key,))
        except sqlite3.Error as exc:
            raise self._fail(exc, "delete", "session", key) from exc
        return cursor.rowcount > 0

    def revoke_all(self, openid: str) -> int:
        """End every session of ``openid``; return how many ended."""
        try:
            cursor = self._conn().execute("DELETE FROM wx_sessions WHERE openid = ?", (openid,))
        except sqlite3.Error as exc:
            raise self._fail(exc, "revoke_all") from exc
        return cursor.rowcount

    def sessions_for(self, openid: str) -> List[SessionInfo]:
        """Describe the live sessions of ``openid``, oldest first."""
        try:
            rows = (
                self._conn()
                .execute(
                    "SELECT key, value, idle_until FROM wx_sessions"
                    " WHERE openid = ?1 AND idle_until > ?2 AND expires_at > ?2",
                    (openid, time.time()),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._fail(exc, "sessions_for") from exc
        infos = []
        for key, value, idle_until in rows:
            session = WxSession.from_json(value)
            infos.append(
                SessionInfo(
                    key_hash=short_hash(key),
                    openid=session.openid,
                    unionid=session.unionid,
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                    idle_until=idle_until,
                )
            )
        infos.sort(key=lambda info: info.created_at)
        return infos

    def claim_code(self, code_key: str, ttl: int) -> Optional[str]:
        """Claim a login code for ``ttl`` seconds, atomically across processes.

        Returns ``None`` to exactly one of many concurrent claimers, :data:`PENDING` to the
        others until :meth:`save` stores the sealed token, then the sealed token. A record
        whose ``ttl`` has passed is claimed afresh.
        """
        try:
            conn = self._conn()
            # Retries of a known code only read, without queueing for the write lock.
            rows = conn.execute(_LIVE_CODE, (code_key, time.time())).fetchall()
            if rows:
                return str(rows[0][0])
            with _transaction(conn):
                now = time.time()
                rows = conn.execute(_LIVE_CODE, (code_key, now)).fetchall()
                if rows:
                    return str(rows[0][0])
                conn.execute(
                    "INSERT OR REPLACE INTO wx_codes (key, sealed, expires_at) VALUES (?, ?, ?)",
                    (code_key, PENDING, now + ttl),
                )
                return None
        except sqlite3.Error as exc:
            raise self._fail(exc, "claim_code", "code", code_key) from exc

    def release_code(self, code_key: str) -> None:
        """Delete a still-pending claim, so that a retry may try again."""
        try:
            self._conn().execute(
                "DELETE FROM wx_codes WHERE key = ? AND sealed = ?", (code_key, PENDING)
            )
        except sqlite3.Error as exc:
            raise self._fail(exc, "release_code", "code", code_key) from exc

    def revoke_session(self, openid: str, key_hash: str) -> bool:
        """End the session of ``openid`` that ``key_hash`` (its :class:`SessionInfo`) names."""
        try:
            conn = self._conn()
            rows = conn.execute("SELECT key FROM wx_sessions WHERE openid = ?", (openid,))
            keys = [(key,) for (key,) in rows.fetchall() if short_hash(key) == key_hash]
            if not keys:
                return False
            cursor = conn.executemany("DELETE FROM wx_sessions WHERE key = ?", keys)
        except sqlite3.Error as exc:
            raise self._fail(exc, "revoke_session") from exc
        return cursor.rowcount > 0

    def purge_expired(self, progress: Optional[PurgeProgress] = None) -> int:
        """Delete expired sessions and records now; return how many sessions went.

        The sessions are walked in batches of :data:`PURGE_BATCH` rows, each batch's expired
        ones deleted in a short transaction of its own, so that purging a large store never
        holds the write lock for long (logins in other processes wait at most one batch).
        ``progress`` is called after each batch with the count deleted so far.
        """
        purged = 0
        last_key = ""
        try:
            conn = self._conn()
            while True:
                rows = conn.execute(_SESSION_BATCH, (last_key, PURGE_BATCH)).fetchall()
                if not rows:
                    break
                last_key = rows[-1][0]
                now = time.time()
                expired = [(key, now) for key, idle, expires in rows if min(idle, expires) <= now]
                if expired:
                    with _transaction(conn):
                        purged += conn.executemany(_DELETE_EXPIRED_SESSION, expired).rowcount
                if progress is not None:
                    progress(purged)
            with _transaction(conn):
                self._purge_records(conn, time.time())
        except sqlite3.Error as exc:
            raise self._fail(exc, "purge_expired") from exc
        return purged

    def maintain(self) -> None:
        """Checkpoint the WAL (``PASSIVE``: it never waits) and purge expired rows when due.

        What every write of a store with ``maintenance=True`` does as it goes, for the stores
        on the same file whose writes do not.
        """
        try:
            conn = self._conn()
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            raise self._fail(exc, "checkpoint") from exc
        if time.time() >= self._next_purge:
            self.purge_expired()

    def get_value(self, name: str) -> Optional[str]:
        """The value stored under ``name``, or ``None`` (one indexed SELECT, never waits)."""
        try:
            rows = (
                self._conn()
                .execute(
                    "SELECT value FROM wx_values WHERE name = ? AND expires_at > ?",
                    (name, time.time()),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._fail(exc, f"get_value {name}") from exc
        return str(rows[0][0]) if rows else None

    def set_value(self, name: str, value: str, ttl: float) -> None:
        """Store ``value`` under ``name`` for ``ttl`` seconds."""
        try:
            self._conn().execute(
                "INSERT OR REPLACE INTO wx_values (name, value, expires_at) VALUES (?, ?, ?)",
                (name, value, time.time() + ttl),
            )
        except sqlite3.Error as exc:
            raise self._fail(exc, f"set_value {name}") from exc

    def delete_value(self, name: str) -> bool:
        """Delete the value under ``name``; ``True`` if a live one existed."""
        try:
            cursor = self._conn().execute(
                "DELETE FROM wx_values WHERE name = ? AND expires_at > ?", (name, time.time())
            )
        except sqlite3.Error as exc:
            raise self._fail(exc, f"delete_value {name}") from exc
        return cursor.rowcount > 0

    def acquire_lock(self, name: str, ttl: float) -> Optional[str]:
        """Take the lock ``name`` for ``ttl`` seconds: a row with an expiry, written in an
        ``IMMEDIATE`` transaction, so exactly one of many processes gets it."""
        owner = new_lock_owner()
        try:
            conn = self._conn()
            with _transaction(conn):
                now = time.time()
                held = conn.execute(
                    "SELECT 1 FROM wx_locks WHERE name = ? AND expires_at > ?", (name, now)
                ).fetchall()
                if held:
                    return None
                conn.execute(
                    "INSERT OR REPLACE INTO wx_locks (name, owner, expires_at) VALUES (?, ?, ?)",
                    (name, owner, now + ttl),
                )
        except sqlite3.Error as exc:
            raise self._fail(exc, f"acquire_lock {name}") from exc
        return owner

    def release_lock(self, name: str, owner: str) -> bool:
        """Release the lock ``name`` if ``owner`` still holds it."""
        try:
            cursor = self._conn().execute(
                "DELETE FROM wx_locks WHERE name = ? AND owner = ? AND expires_at > ?",
                (name, owner, time.time()),
            )
        except sqlite3.Error as exc:
            raise self._fail(exc, f"release_lock {name}") from exc
        return cursor.rowcount > 0

    def close(self) -> None:
        """Close this thread's connection; the next call opens a new one."""
        local = self._local
        conn = local.conn
        if conn is None:
            return
        local.conn = None
        if local.pid == os.getpid():
            conn.close()
        else:
            _INHERITED.append(conn)

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn = local.conn
        if conn is not None and local.pid == os.getpid():
            return conn
        self.close()
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._fail(exc, "open") from exc
        conn = sqlite3.connect(self._path, timeout=self._timeout, isolation_level=None)
        try:
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            if not self._maintenance:
                conn.execute("PRAGMA wal_autocheckpoint=0")
            if not self._schema_ready:
                # Each statement is atomic and idempotent, and one that finds its object
                # already there takes no write lock: opening never waits for a writer.
                for statement in _SCHEMA:
                    conn.execute(statement)
                self._schema_ready = True
        except BaseException:
            conn.close()
            raise
        local.conn = conn
        local.cursor = conn.cursor()
        local.pid = os.getpid()
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs it to itself, and SQLite reports "locked" at once
        # instead of waiting, so processes that create the file together take turns here.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.005)

    def _purge(self, conn: sqlite3.Connection, now: float) -> int:
        gone = conn.execute(
            "DELETE FROM wx_sessions WHERE idle_until <= ?1 OR expires_at <= ?1", (now,)
        ).rowcount
        self._purge_records(conn, now)
        return gone

    def _purge_records(self, conn: sqlite3.Connection, now: float) -> None:
        self._next_purge = now + PURGE_INTERVAL
        for statement in _EXPIRED_RECORDS:
            conn.execute(statement, (now,))

    def _fail(
        self, exc: BaseException, action: str, kind: str = "", key: str = ""
    ) -> StoreUnavailable:
        # sqlite3 messages never contain bound parameters, so the cause is safe to log.
        subject = f" for {kind} {short_hash(key)}" if key else ""
        detail = f"SQLite {self._path}: {action}{subject}: {type(exc).__name__}: {exc}"
        # SQLITE_BUSY and SQLITE_LOCKED: "database is locked", "database table is locked".
        if isinstance(exc, sqlite3.OperationalError) and "is locked" in str(exc):
            return SQLiteBusy(detail=detail)
        return StoreUnavailable(detail=detail)


def default_sqlite_path(appid: str) -> pathlib.Path:
    """Where the default store lives: ``$XDG_STATE_HOME/wxmiddleware/sessions-<appid>.sqlite3``.

    Without an absolute ``XDG_STATE_HOME`` (the XDG spec says to ignore relative ones), the
    base is ``~/.local/state``. Characters of ``appid`` outside ``[A-Za-z0-9_-]`` become ``_``.
    """
    state_home = os.environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(state_home):
        base = pathlib.Path(state_home)
    else:
        base = pathlib.Path.home() / ".local" / "state"
    safe_appid = re.sub(r"[^A-Za-z0-9_-]", "_", appid) or "default"
    return base / "wxmiddleware" / f"sessions-{safe_appid}.sqlite3"
