"""The login-code records of :class:`~wxmiddleware.stores.sqlite.SQLiteStore`.

A record, keyed by a hash of the code, remembers that a login owns the code (``sealed`` is
empty) and then the token it produced, sealed under the code, so a retry of the code gets
the same session. Records live in ``wx_codes`` with an expiry, shared by every process on
the machine; the login's own transaction completes one (:data:`COMPLETE_CODE`), and the
store's maintenance purges expired ones.
"""

from __future__ import annotations

import sqlite3
import time

from ..session import CLAIM_OWNER, CLAIM_PENDING, CodeClaim, claim_used
from ._sqlite_db import Database, transaction

_LIVE_CODE = "SELECT sealed FROM wx_codes WHERE key = ? AND expires_at > ?"
# The sealed column of a code record that a login still owns (sealed tokens are never empty).
_PENDING = ""
#: Puts the sealed token into the code record a login owned (in the login's transaction).
COMPLETE_CODE = "UPDATE wx_codes SET sealed = ? WHERE key = ?"


class CodeClaims:
    """The code operations of the store protocol, over ``self._db``."""

    _db: Database

    def claim_code(self, code_key: str, ttl: int) -> CodeClaim:
        """Claim a login code for ``ttl`` seconds, atomically across processes (an
        ``IMMEDIATE`` transaction): see :meth:`SessionStore.claim_code`."""
        try:
            conn = self._db.connection()
            # Retries of a known code only read, without queueing for the write lock.
            rows = conn.execute(_LIVE_CODE, (code_key, time.time())).fetchall()
            if rows:
                return _claim_of(rows[0][0])
            with transaction(conn):
                now = time.time()
                rows = conn.execute(_LIVE_CODE, (code_key, now)).fetchall()
                if rows:
                    return _claim_of(rows[0][0])
                conn.execute(
                    "INSERT OR REPLACE INTO wx_codes (key, sealed, expires_at) VALUES (?, ?, ?)",
                    (code_key, _PENDING, now + ttl),
                )
                return CLAIM_OWNER
        except sqlite3.Error as exc:
            raise self._db.failure(exc, "claim_code", "code", code_key) from exc

    def release_code(self, code_key: str) -> None:
        """Delete a still-pending claim, so that a retry may try again."""
        try:
            self._db.connection().execute(
                "DELETE FROM wx_codes WHERE key = ? AND sealed = ?", (code_key, _PENDING)
            )
        except sqlite3.Error as exc:
            raise self._db.failure(exc, "release_code", "code", code_key) from exc


def _claim_of(sealed: str) -> CodeClaim:
    return CLAIM_PENDING if sealed == _PENDING else claim_used(str(sealed))
