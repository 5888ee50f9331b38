"""Fill a SQLite session store with many sessions at once, for load and scale tests.

Saving a million sessions through the store takes minutes; copying rows in SQL takes
seconds. :func:`fill_sqlite_store` copies the rows already in the store (at least one session
saved through it) under fresh keys and openids until the table holds ``total`` rows, a
share of them with deadlines in the past. The copies are filler: their sealed session_keys
are bound to the openid they were saved for, so no copy is ever found by a token; the sessions
saved through the store stay usable.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Union

__all__ = ["fill_sqlite_store"]

#: Rows copied per transaction while filling.
_FILL_BATCH = 200_000


def fill_sqlite_store(path: Union[str, Path], total: int, expired_share: float = 0.15) -> int:
    """Copy the sessions in the SQLite store at ``path`` until it holds ``total`` rows;
    about ``expired_share`` (0 to 1) of the copies get idle and absolute deadlines in the
    past, the rest an idle deadline an hour ahead. Returns the number of rows copied.

    Raises ``ValueError`` when the store holds no session to copy or ``expired_share`` is
    outside 0..1. Run it while no process writes to the store (it writes in transactions
    of 200,000 rows).
    """
    if not 0.0 <= expired_share <= 1.0:
        raise ValueError(f"expired_share must be within 0 and 1, got {expired_share!r}")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        have = int(conn.execute("SELECT count(*) FROM wx_sessions").fetchone()[0])
        if have == 0:
            raise ValueError("the store holds no session to copy: save one through it first")
        columns = [row[1] for row in conn.execute("PRAGMA table_info(wx_sessions)")]
        expired = "abs(random()) % 1000000 < :expired"
        fresh = {
            "key": "hex(randomblob(32))",
            "openid": "'o' || hex(randomblob(14))",
            "idle_until": f"CASE WHEN {expired} THEN unixepoch() - 60 ELSE unixepoch() + 3600 END",
        }
        chosen = ", ".join(fresh.get(column, column) for column in columns)
        copied = 0
        while have + copied < total:
            batch = min(have + copied, total - have - copied, _FILL_BATCH)
            conn.execute("BEGIN")
            conn.execute(
                # Built from the store's own column names (PRAGMA table_info), no input.
                f"INSERT INTO wx_sessions ({', '.join(columns)}) SELECT {chosen}"  # noqa: S608
                " FROM wx_sessions LIMIT :batch",
                {"expired": int(expired_share * 1_000_000), "batch": batch},
            )
            # The absolute expiry never comes before the idle deadline (session.idle_deadline).
            conn.execute(
                "UPDATE wx_sessions SET expires_at = idle_until WHERE expires_at > idle_until"
                " AND idle_until < unixepoch()"
            )
            conn.execute("COMMIT")
            copied += batch
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return copied
    finally:
        conn.close()
