"""Shared values and locks of :class:`~wxmiddleware.stores.sqlite.SQLiteStore`.

Each is a row with an expiry (epoch seconds), in a table of its own, so every process on the
machine sees it; a row past its expiry counts as absent and is purged with expired sessions.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Optional

from ._sqlite_db import Database, transaction
from .base import new_lock_owner


class SharedValues:
    """The value and lock operations of the store protocol, over ``self._db``."""

    _db: Database

    def get_value(self, name: str) -> Optional[str]:
        """The value stored under ``name``, or ``None`` (one indexed SELECT, never waits)."""
        try:
            rows = (
                self._db.connection()
                .execute(
                    "SELECT value FROM wx_values WHERE name = ? AND expires_at > ?",
                    (name, time.time()),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._db.failure(exc, f"get_value {name}") from exc
        return str(rows[0][0]) if rows else None

    def set_value(self, name: str, value: str, ttl: float) -> None:
        """Store ``value`` under ``name`` for ``ttl`` seconds."""
        try:
            self._db.connection().execute(
                "INSERT OR REPLACE INTO wx_values (name, value, expires_at) VALUES (?, ?, ?)",
                (name, value, time.time() + ttl),
            )
        except sqlite3.Error as exc:
            raise self._db.failure(exc, f"set_value {name}") from exc

    def delete_value(self, name: str) -> bool:
        """Delete the value under ``name``; ``True`` if a live one existed."""
        try:
            cursor = self._db.connection().execute(
                "DELETE FROM wx_values WHERE name = ? AND expires_at > ?", (name, time.time())
            )
        except sqlite3.Error as exc:
            raise self._db.failure(exc, f"delete_value {name}") from exc
        return cursor.rowcount > 0

    def acquire_lock(self, name: str, ttl: float) -> Optional[str]:
        """Take the lock ``name`` for ``ttl`` seconds: a row with an expiry, written in an
        ``IMMEDIATE`` transaction, so exactly one of many processes gets it."""
        owner = new_lock_owner()
        try:
            conn = self._db.connection()
            with transaction(conn):
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
            raise self._db.failure(exc, f"acquire_lock {name}") from exc
        return owner

    def release_lock(self, name: str, owner: str) -> bool:
        """Release the lock ``name`` if ``owner`` still holds it."""
        try:
            cursor = self._db.connection().execute(
                "DELETE FROM wx_locks WHERE name = ? AND owner = ? AND expires_at > ?",
                (name, owner, time.time()),
            )
        except sqlite3.Error as exc:
            raise self._db.failure(exc, f"release_lock {name}") from exc
        return cursor.rowcount > 0
