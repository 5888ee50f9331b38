"""SQLiteStore: the embedded default store.

Zero setup, shared by every worker process on one machine (gunicorn ``-w 4``), and it
survives restarts. The database runs in WAL mode so readers never wait for the writer;
sessions are keyed by :func:`~wxmiddleware.session.token_key` and hold their session_key
sealed (:mod:`wxmiddleware.stores._records`), so the file holds no usable token and no
usable session_key. Expired rows are deleted lazily (see :meth:`SQLiteStore.purge_expired`),
by a maintenance thread of each process (:mod:`wxmiddleware.stores._sqlite_maintenance`).

Shared values and locks (:meth:`SQLiteStore.set_value`, :meth:`SQLiteStore.acquire_lock`)
and login-code records (:meth:`SQLiteStore.claim_code`) are rows with an expiry, in tables
of their own (:mod:`wxmiddleware.stores._sqlite_values`,
:mod:`wxmiddleware.stores._sqlite_codes`), so every process on the machine sees them.
"""

from __future__ import annotations

import os
import pathlib
import re
import sqlite3
import time
from contextlib import suppress
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

from ..session import (
    SessionScope,
    WxSession,
    deadline_after_use,
    idle_deadline,
    over_cap,
    short_hash,
    token_key,
)
from . import _records
from ._sqlite_codes import COMPLETE_CODE, CodeClaims
from ._sqlite_db import Database, SQLiteBusy, transaction
from ._sqlite_maintenance import BATCH_PAUSE as BATCH_PAUSE
from ._sqlite_maintenance import MAINTENANCE_BATCH as MAINTENANCE_BATCH
from ._sqlite_maintenance import PURGE_INTERVAL as PURGE_INTERVAL
from ._sqlite_maintenance import Maintenance
from ._sqlite_values import SharedValues
from .base import SessionInfo

__all__ = ["SQLiteBusy", "SQLiteStore", "default_sqlite_path"]

#: How many recently parsed sessions a store keeps per process (about 0.5 KB each).
RECENT_SESSIONS = 1024

_GET = "SELECT value, idle_until, expires_at FROM wx_sessions WHERE key = ?"
# The guard keeps a slow writer from moving a deadline that another process slid further.
_SLIDE = "UPDATE wx_sessions SET idle_until = ?1 WHERE key = ?2 AND idle_until < ?1"
_INSERT = (
    "INSERT OR REPLACE INTO wx_sessions (key, openid, value, idle_until, expires_at)"
    " VALUES (?, ?, ?, ?, ?)"
)
_DELETE = "DELETE FROM wx_sessions WHERE key = ?"
# Every session of an openid (of every app: the caller checks the record's appid).
_OPENID_ROWS = "SELECT key, value FROM wx_sessions WHERE openid = ?"
# The live sessions of an openid (of every app: the caller checks the record's appid).
_USER_SESSIONS = (
    "SELECT key, value FROM wx_sessions WHERE openid = ?1 AND idle_until > ?2 AND expires_at > ?2"
)


class _Lookup(NamedTuple):
    """What :meth:`SQLiteStore._lookup` found: the session and the idle deadline to write."""

    session: WxSession
    key: str
    #: The new idle deadline, or ``None`` when the stored one is close enough.
    slide_to: Optional[float]


class SQLiteStore(SharedValues, CodeClaims, Maintenance):
    """A :class:`~wxmiddleware.stores.base.SessionStore` in one SQLite file.

    Every process and thread that uses the store opens its own connection on first use (a
    store created before ``fork()`` opens fresh ones in each child), so one instance may be
    created at import time and shared. The parent directory (``0700``), the file (``0600``)
    and the schema are created on first use, or by :meth:`check`, which
    :func:`~wxmiddleware.stores.open_store` calls. A relative ``path`` is resolved against
    the working directory at construction.

    ``timeout`` is how long (seconds) a write waits for another process's write before the
    store gives up with :class:`~wxmiddleware.errors.StoreUnavailable`. Every
    :class:`sqlite3.Error` (locked, unwritable, full or corrupt database) is raised as
    :class:`~wxmiddleware.errors.StoreUnavailable` whose ``detail`` (for the log, not the
    client) names the cause, naming a session only by a short hash of its key; a write that
    found the lock taken raises the subclass :class:`SQLiteBusy`.

    Sessions live by the rules of :mod:`wxmiddleware.session`; a use writes the idle
    deadline only when it moves by more than the slide granularity
    (:func:`~wxmiddleware.session.deadline_after_use`),
    so most authenticated requests cost one indexed SELECT and no write.
    """

    def __init__(self, path: Union[str, os.PathLike[str]], *, timeout: float = 2.0) -> None:
        super().__init__()
        self._db = Database(pathlib.Path(os.path.abspath(path)), timeout, self._maintenance)
        # token -> (key, stored JSON, parsed session, the scope that opened it): a lookup in
        # that scope whose row still holds that JSON skips hashing the token and parsing the
        # JSON. The SELECT always runs, so expiry, logout and revocation in any process take
        # effect at once; another scope (another app, or other store keys) opens it afresh.
        self._recent: Dict[str, Tuple[str, str, WxSession, SessionScope]] = {}

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def check(self) -> None:
        """Make the directory (``0700``) and the file (``0600``) now unless they exist, and
        raise :class:`~wxmiddleware.errors.ConfigError` (naming the path and the cause) for a
        path that cannot hold the database (a directory that cannot be made, a directory
        where the file should be) or that another local user could write: a set-up error,
        found at start-up rather than as a 503 at the first request. Opens no connection, so
        it may run before ``fork()``. A store used without it does the same on first use,
        raising :class:`~wxmiddleware.errors.StoreUnavailable` instead.
        """
        self._db.prepare()

    @property
    def path(self) -> pathlib.Path:
        """The absolute path of the database file."""
        return self._db.path

    def get(self, token: str, idle_ttl: int, scope: SessionScope) -> Optional[WxSession]:
        """Return the live session of ``scope``'s app for ``token`` and slide its idle
        timeout, or ``None``."""
        found = self._lookup(token, idle_ttl, scope)
        if found is None:
            return None
        if found.slide_to is not None:
            self._slide(found)
        return found.session

    def _lookup(self, token: str, idle_ttl: int, scope: SessionScope) -> Optional[_Lookup]:
        # The read step of get: it never waits for a writer (WAL mode). Returns the live
        # session and, when its idle deadline should move, the new deadline for _slide.
        recent = self._recent
        cached = recent.get(token)
        key = token_key(token) if cached is None else cached[0]
        try:
            self._db.connection()
            # fetchall() steps the statement to its end, which closes the read transaction
            # before the optional UPDATE (an open one could fail with SQLITE_BUSY_SNAPSHOT).
            rows = self._db.local.cursor.execute(_GET, (key,)).fetchall()
        except sqlite3.Error as exc:
            raise self._db.failure(exc, "get", "session", key) from exc
        if not rows:
            if cached is not None:
                recent.pop(token, None)
            return None
        value, idle_until, expires_at = rows[0]
        deadline = deadline_after_use(idle_until, expires_at, idle_ttl, time.time())
        if deadline is None:
            return None
        if cached is not None and cached[1] == value and cached[3] is scope:
            session = cached[2]
        else:
            try:
                opened = _records.decode(value, scope)
            except ValueError as exc:
                raise self._db.failure(exc, "get (undecodable)", "session", key) from None
            if opened is None:
                return None
            session = opened
            if len(recent) >= RECENT_SESSIONS:
                # The oldest entry goes; another thread may have just removed it.
                with suppress(StopIteration, KeyError, RuntimeError):
                    del recent[next(iter(recent))]
            recent[token] = (key, value, session, scope)
        return _Lookup(session, key, None if deadline == idle_until else deadline)

    def _slide(self, found: _Lookup) -> None:
        # The write step of get: move the idle deadline (it may wait for a writer).
        try:
            self._db.connection().execute(_SLIDE, (found.slide_to, found.key))
        except sqlite3.Error as exc:
            raise self._db.failure(exc, "get", "session", found.key) from exc

    def save(
        self,
        token: str,
        session: WxSession,
        idle_ttl: int,
        scope: SessionScope,
        code_key: Optional[str] = None,
        sealed_token: Optional[str] = None,
    ) -> None:
        """Store a new session, put its key into the user's other sessions, end the oldest
        beyond the cap and complete a code claim: one transaction, all or nothing.

        Expired rows are not deleted here: the first write of a process starts its
        maintenance thread (:mod:`wxmiddleware.stores._sqlite_maintenance`), which does it in
        batches of :data:`MAINTENANCE_BATCH`, outside every login's transaction.
        """
        key = token_key(token)
        sealed = scope.seal_key(session.openid, session.session_key)
        now = time.time()
        if self._maintenance and self._maintainer_pid != os.getpid():
            self._start_maintenance()
        try:
            conn = self._db.connection()
            with transaction(conn):
                idle_until = idle_deadline(session.expires_at, idle_ttl, now)
                record = _records.encode(session, scope, sealed)
                conn.execute(_INSERT, (key, session.openid, record, idle_until, session.expires_at))
                live = self._rekey(conn, session.openid, sealed, session.created_at, scope, now)
                ended = over_cap(live, scope.max_sessions)
                if ended:
                    conn.executemany(_DELETE, [(gone,) for gone in ended])
                if code_key is not None and sealed_token is not None:
                    conn.execute(COMPLETE_CODE, (sealed_token, code_key))
        except sqlite3.Error as exc:
            raise self._db.failure(exc, "save", "session", key) from exc

    def set_session_key(
        self, openid: str, session_key: str, key_at: float, scope: SessionScope
    ) -> int:
        """See :meth:`SessionStore.set_session_key`: one transaction."""
        sealed = scope.seal_key(openid, session_key)
        try:
            conn = self._db.connection()
            with transaction(conn):
                return len(self._rekey(conn, openid, sealed, key_at, scope, time.time()))
        except sqlite3.Error as exc:
            raise self._db.failure(exc, "set_session_key") from exc

    def _rekey(
        self,
        conn: sqlite3.Connection,
        openid: str,
        sealed: str,
        key_at: float,
        scope: SessionScope,
        now: float,
    ) -> List[Tuple[str, float]]:
        # In a write transaction: the sealed key into every live session of the openid in
        # scope's app whose key is older; returns those sessions' keys and creation times.
        rows = conn.execute(_USER_SESSIONS, (openid, now)).fetchall()
        live: List[Tuple[str, float]] = []
        updates: List[Tuple[str, str]] = []
        for key, value in rows:
            try:
                fields = _records.public_fields(value)
            except (ValueError, KeyError, TypeError):
                continue  # not a sealed record: never found, purged when it expires
            if fields.appid != scope.appid:
                continue
            live.append((key, fields.created_at))
            rekeyed = _records.rekeyed(value, sealed, key_at)
            if rekeyed is not None:
                updates.append((rekeyed, key))
        if updates:
            conn.executemany("UPDATE wx_sessions SET value = ? WHERE key = ?", updates)
        return live

    def delete(self, token: str) -> bool:
        """End one session; ``True`` if it existed."""
        key = token_key(token)
        try:
            cursor = self._db.connection().execute(_DELETE, (key,))
        except sqlite3.Error as exc:
            raise self._db.failure(exc, "delete", "session", key) from exc
        return cursor.rowcount > 0

    def revoke_all(self, openid: str, scope: SessionScope) -> int:
        """End every session of ``openid`` in ``scope``'s app, in one transaction; return
        how many ended (rows not purged yet among them)."""
        try:
            conn = self._db.connection()
            with transaction(conn):
                rows = conn.execute(_OPENID_ROWS, (openid,)).fetchall()
                ended = [(key,) for key, value in rows if _of_app(value, scope.appid)]
                conn.executemany(_DELETE, ended)
        except sqlite3.Error as exc:
            raise self._db.failure(exc, "revoke_all") from exc
        return len(ended)

    def sessions_for(self, openid: str) -> List[SessionInfo]:
        """Describe the live sessions of ``openid``, oldest first."""
        try:
            rows = (
                self._db.connection()
                .execute(
                    "SELECT key, value, idle_until FROM wx_sessions"
                    " WHERE openid = ?1 AND idle_until > ?2 AND expires_at > ?2",
                    (openid, time.time()),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._db.failure(exc, "sessions_for") from exc
        infos = []
        for key, value, idle_until in rows:
            try:
                session = _records.public_fields(value)
            except (ValueError, KeyError, TypeError):
                continue
            infos.append(
                SessionInfo(
                    key_hash=short_hash(key),
                    openid=session.openid,
                    unionid=session.unionid,
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                    idle_until=idle_until,
                    appid=session.appid,
                )
            )
        infos.sort(key=lambda info: info.created_at)
        return infos

    def revoke_session(self, openid: str, key_hash: str) -> bool:
        """End the session of ``openid`` that ``key_hash`` (its :class:`SessionInfo`) names."""
        try:
            conn = self._db.connection()
            rows = conn.execute("SELECT key FROM wx_sessions WHERE openid = ?", (openid,))
            keys = [(key,) for (key,) in rows.fetchall() if short_hash(key) == key_hash]
            if not keys:
                return False
            cursor = conn.executemany("DELETE FROM wx_sessions WHERE key = ?", keys)
        except sqlite3.Error as exc:
            raise self._db.failure(exc, "revoke_session") from exc
        return cursor.rowcount > 0

    def close(self) -> None:
        """Close this thread's connection and stop the maintenance thread; the next call
        opens a new connection (and the next write starts maintenance again)."""
        self._stop_maintainer()
        self._db.close()


class _InlineSQLiteStore(SQLiteStore):
    """A store for writes on an event loop: it never waits for SQLite's write lock (created
    with ``timeout=0.0``, a taken lock is :class:`SQLiteBusy` at once), and its writes never
    checkpoint the WAL (which may ``fsync``) nor purge expired rows; another store on the
    same file must call ``_maintain`` now and then (:class:`~wxmiddleware.AsyncSQLiteStore`
    does, in its writer thread)."""

    _maintenance = False


def _of_app(value: str, appid: str) -> bool:
    # Whether a stored record is a session of appid; a value that is not a sealed record is
    # never found, and goes when it expires.
    try:
        return _records.public_fields(value).appid == appid
    except (ValueError, KeyError, TypeError):
        return False


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
