"""The SQLite file under :class:`~wxmiddleware.stores.sqlite.SQLiteStore`: its schema, and
connections opened per thread and per process.

:meth:`Database.prepare` (run when a store is created) makes the directory ``0700`` and the
file ``0600`` when it creates them (SQLite gives ``-wal`` and ``-shm`` the file's mode), and
refuses, with a :class:`~wxmiddleware.errors.ConfigError` naming the path, a path that cannot
work or that another local user could write. Opening a connection creates the schema and
switches the file to WAL mode; a connection that crossed ``fork()`` is never used (nor
closed) in the child.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import sqlite3
import stat
import threading
import time
import weakref
from contextlib import contextmanager, suppress
from typing import Iterator, List, Optional

from ..errors import ConfigError, StoreUnavailable
from ..session import short_hash

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS wx_sessions (
        key TEXT PRIMARY KEY NOT NULL,
        openid TEXT NOT NULL,
        value TEXT NOT NULL,
        idle_until REAL NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS wx_sessions_openid ON wx_sessions (openid)",
    # Expired rows are found through it, a batch at a time, however large the table grows.
    # idle_until is never past expires_at (session.idle_deadline caps it), so a row is
    # expired exactly when idle_until has passed.
    "CREATE INDEX IF NOT EXISTS wx_sessions_idle_until ON wx_sessions (idle_until)",
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
    # wx_codes holds every login of the last minutes: its expired rows, like those of the
    # other small tables, go a batch at a time through an index (files made before these
    # indexes existed gain them when a store first opens them).
    "CREATE INDEX IF NOT EXISTS wx_codes_expires_at ON wx_codes (expires_at)",
    "CREATE INDEX IF NOT EXISTS wx_values_expires_at ON wx_values (expires_at)",
    "CREATE INDEX IF NOT EXISTS wx_locks_expires_at ON wx_locks (expires_at)",
)


#: The files SQLite keeps next to the database in WAL mode.
WAL_SUFFIXES = ("-wal", "-shm")


def _refuse_shared(path: pathlib.Path, is_dir: bool) -> None:
    """ConfigError when another local user could write ``path`` (it belongs to someone
    else, or is group/other-writable: a directory with the sticky bit, like ``/tmp``, keeps
    each user's files their own); a file of ours readable by others is made ``0600``."""
    if os.name != "posix":
        return
    info = path.stat()
    kind = "directory" if is_dir else "file"
    if info.st_uid not in (os.getuid(), 0):
        raise ConfigError(f"SQLite store: the {kind} {path} belongs to another user")
    shared = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if shared and not (is_dir and info.st_mode & stat.S_ISVTX):
        raise ConfigError(
            f"SQLite store: other users can write the {kind} {path}; make it private"
            f" (chmod {'700' if is_dir else '600'})"
        )
    if not is_dir and info.st_mode & 0o077 and info.st_uid == os.getuid():
        path.chmod(0o600)


def _make_private_directories(directory: pathlib.Path) -> None:
    """Make ``directory`` and each missing parent ``0700`` (``mkdir(parents=True)`` would
    give the parents the umask's mode, as ``mkdir -p`` does)."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    for each in reversed(missing):
        each.mkdir(mode=0o700, exist_ok=True)


def _create_private(path: pathlib.Path) -> None:
    """Create ``path`` empty and ``0600`` unless it exists, without ever opening it.

    The file is made under a temporary name and hard-linked into place: closing any
    descriptor of the database file would drop every POSIX lock that this process's SQLite
    connections (other threads) hold on it, since ``fcntl`` locks belong to the process
    (SQLite's "How To Corrupt An SQLite Database File", section 2.2).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    # A short random name: it fits beside a database name of any length, and one left behind
    # by a killed process never blocks the next.
    temporary = path.with_name(f".wxmiddleware-{secrets.token_hex(8)}.new")
    os.close(os.open(temporary, flags, 0o600))
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    except OSError:
        # A file system without hard links (FAT, some network mounts): create it in place.
        with suppress(FileExistsError):
            os.close(os.open(path, flags, 0o600))
    finally:
        os.unlink(temporary)


class SQLiteBusy(StoreUnavailable):
    """A write found SQLite's write lock taken for its whole ``timeout``: nothing was written."""


class _Local(threading.local):
    conn: Optional[sqlite3.Connection] = None
    # Set with conn, and only read after connection(): the cursor of conn, reused by reads.
    cursor: sqlite3.Cursor
    pid: int = 0


# Connections opened by a parent process and found in a child. SQLite must not close them
# there (its cleanup could delete the parent's WAL), so they are kept, unused, for good.
INHERITED: List[sqlite3.Connection] = []
_OPEN: weakref.WeakSet[Database] = weakref.WeakSet()


def _close_before_fork() -> None:
    # A connection that crosses fork() leaves SQLite's per-process lock bookkeeping in the
    # child believing it holds locks it does not; closing the forking thread's connections
    # first lets both processes reopen cleanly.
    for database in list(_OPEN):
        database.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_close_before_fork)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception."""
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


class Database:
    """Connections to one SQLite file, one per thread and process, opened on first use.

    ``timeout`` (seconds) is how long a statement waits for another writer's lock.
    ``autocheckpoint=False`` turns off SQLite's automatic WAL checkpoints on this
    connection's commits (someone else checkpoints).
    """

    def __init__(self, path: pathlib.Path, timeout: float, autocheckpoint: bool) -> None:
        self.path = path
        self.timeout = timeout
        self._autocheckpoint = autocheckpoint
        self.local = _Local()
        self._schema_ready = False
        _OPEN.add(self)

    def prepare(self) -> None:
        """Make the directory (``0700``) and the empty file (``0600``) unless they exist, and
        check what exists: :class:`~wxmiddleware.errors.ConfigError` (naming the path and the
        cause) for a path that cannot hold the database or that another user could write.
        """
        path = self.path
        try:
            _make_private_directories(path.parent)
            _refuse_shared(path.parent, is_dir=True)
            if not path.exists():
                _create_private(path)
            if not path.is_file():
                raise ConfigError(f"SQLite store: {path} is not a file")
            for candidate in (path, *(path.with_name(path.name + s) for s in WAL_SUFFIXES)):
                if candidate.exists():
                    _refuse_shared(candidate, is_dir=False)
        except OSError as exc:
            raise ConfigError(
                f"SQLite store: {path} cannot be used: {type(exc).__name__}: {exc.strerror}"
            ) from None

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened now if this thread or process has none.

        Raises :class:`StoreUnavailable` when :meth:`prepare` refuses the path, and
        :class:`sqlite3.Error` when SQLite cannot open the file.
        """
        local = self.local
        conn = local.conn
        if conn is not None and local.pid == os.getpid():
            return conn
        self.close()
        try:
            self.prepare()
        except ConfigError as exc:
            raise StoreUnavailable(detail=str(exc)) from None
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            if not self._autocheckpoint:
                conn.execute("PRAGMA wal_autocheckpoint=0")
            if not self._schema_ready:
                # Each statement is atomic and idempotent, and one that finds its object
                # already there takes no write lock: opening never waits for a writer.
                for statement in SCHEMA:
                    conn.execute(statement)
                self._schema_ready = True
        except BaseException:
            conn.close()
            raise
        local.conn = conn
        local.cursor = conn.cursor()
        local.pid = os.getpid()
        return conn

    def close(self) -> None:
        """Close this thread's connection; the next call opens a new one."""
        local = self.local
        conn = local.conn
        if conn is None:
            return
        local.conn = None
        if local.pid == os.getpid():
            conn.close()
        else:
            INHERITED.append(conn)

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs it to itself, and SQLite reports "locked" at once
        # instead of waiting, so processes that create the file together take turns here.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.005)

    def failure(
        self, exc: BaseException, action: str, kind: str = "", key: str = ""
    ) -> StoreUnavailable:
        """The :class:`StoreUnavailable` (or :class:`SQLiteBusy`) to raise for ``exc``.

        Its ``detail`` names the file, ``action``, the cause and its extended result code
        (such as ``SQLITE_IOERR_SHORT_READ``, on Python 3.11+), and a record only by a short
        hash of its ``key``. A SQLite error other than a busy lock also closes this thread's
        connection, so that its next call starts on a fresh one (schema included).
        """
        # sqlite3 messages never contain bound parameters, so the cause is safe to log; the
        # extended code (Python 3.11+) tells one "disk I/O error" from another.
        subject = f" for {kind} {short_hash(key)}" if key else ""
        code = getattr(exc, "sqlite_errorname", None)
        named = f" ({code})" if code else ""
        detail = f"SQLite {self.path}: {action}{subject}: {type(exc).__name__}: {exc}{named}"
        # SQLITE_BUSY and SQLITE_LOCKED: "database is locked", "database table is locked".
        if isinstance(exc, sqlite3.OperationalError) and "is locked" in str(exc):
            return SQLiteBusy(detail=detail)
        if isinstance(exc, sqlite3.Error):
            # After an I/O or corruption error the connection's state is unknown, and a file
            # replaced under it lacks the tables: this thread's next call opens a fresh one
            # and makes the (idempotent) schema again.
            self.close()
            self._schema_ready = False
        return StoreUnavailable(detail=detail)
