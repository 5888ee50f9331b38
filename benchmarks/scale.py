"""How the stores behave as they grow: 10^3, 10^5 and 10^6 stored sessions.

For SQLite and Redis at each size (15 % of the SQLite rows already expired; Redis drops
expired keys itself), through the public store API:

- ``lookup``: ``get`` of a live session's token, p50 and p99 (microseconds);
- ``login``: what a login asks of the store, ``claim_code`` then ``save``, p50 and p99;
- ``lock_max_ms`` (SQLite): the longest time SQLite's write lock was held by the store while
  it logged users in and purged, as a prober thread sees it: the prober takes the write lock
  (``BEGIN IMMEDIATE``) on its own connection every millisecond, and its longest wait is the
  longest hold;
- ``purge_per_s`` (SQLite): expired rows ``purge_expired`` removes per second;
- ``bytes_per_session``: SQLite's file size over its rows; Redis's ``MEMORY USAGE`` of a
  session key plus its share of the user's index key.

Filling uses bulk writes in the store's own layout: rows (keys) copied from sessions made
through ``save`` with fresh keys, openids and deadlines (SQLite:
:func:`wxmiddleware.testing.bulk.fill_sqlite_store`). It prints the 10^6 / 10^3 ratios and
the goals (login p99 <= 2x, lookup p99 <= 1.5x, lock hold <= 50 ms; Redis <= 500 bytes).

Run: ``python benchmarks/scale.py [--sizes 1000,100000,1000000] [--stores sqlite,redis]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import _bench

from wxmiddleware._sealing import Sealer
from wxmiddleware.session import SessionScope, WxSession, code_key, new_token, token_key
from wxmiddleware.stores.sqlite import SQLiteStore
from wxmiddleware.testing.bulk import fill_sqlite_store

SIZES = (1_000, 100_000, 1_000_000)
EXPIRED_SHARE = 0.15
IDLE = 7200
SAMPLES = 2_000
SCOPE = SessionScope("wxbench0000000000", Sealer(["scale-benchmark-store-key"]))


def session(openid: str) -> WxSession:
    now = time.time()
    return WxSession(openid=openid, session_key="k" * 24, unionid=None,
                     created_at=now, expires_at=now + 30 * 86400, appid=SCOPE.appid)


def percentiles(samples: List[float]) -> Dict[str, float]:
    cuts = statistics.quantiles(samples, n=100)
    return {"p50": round(cuts[49] * 1e6, 1), "p99": round(cuts[98] * 1e6, 1)}


def measure_ops(store: Any, tokens: Sequence[str], samples: int) -> Dict[str, Any]:
    """Lookup and login latencies (microseconds) through the public store API."""
    lookups: List[float] = []
    for index in range(samples):
        token = tokens[index % len(tokens)]
        started = time.perf_counter()
        found = store.get(token, IDLE, SCOPE)
        lookups.append(time.perf_counter() - started)
        assert found is not None
    logins: List[float] = []
    for index in range(samples // 4):
        code = secrets.token_urlsafe(24)
        started = time.perf_counter()
        store.claim_code(code_key(code), 300)
        store.save(new_token(), session(f"login-{index}"), IDLE, SCOPE)
        logins.append(time.perf_counter() - started)
    return {"lookup": percentiles(lookups), "login": percentiles(logins)}


def seed(store: Any, count: int) -> List[str]:
    tokens = [new_token() for _ in range(count)]
    for n, token in enumerate(tokens):
        store.save(token, session(f"seed-{n}"), IDLE, SCOPE)
    return tokens


# --- SQLite ---


@contextlib.contextmanager
def lock_prober(path: Path) -> Iterator[Callable[[], float]]:
    """Takes SQLite's write lock every millisecond; yields a function giving the longest
    wait so far (milliseconds): the longest time anybody else held the lock."""
    longest = [0.0]
    stopping = threading.Event()

    def probe() -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=60)
        while not stopping.is_set():
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            waited = time.perf_counter() - started
            conn.execute("COMMIT")
            longest[0] = max(longest[0], waited * 1e3)
            time.sleep(0.001)
        conn.close()

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        yield lambda: longest[0]
    finally:
        stopping.set()
        thread.join()


def measure_sqlite(size: int, samples: int) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sessions.db"
        store = SQLiteStore(path)
        tokens = seed(store, min(size, 1000))
        fill_sqlite_store(path, size, EXPIRED_SHARE)
        rows = sqlite3.connect(path).execute("SELECT count(*) FROM wx_sessions").fetchone()[0]
        size_bytes = sum(p.stat().st_size for p in Path(folder).glob("sessions.db*"))
        # A fresh store, as a new worker process has: its first login is when maintenance
        # used to run inside the write transaction.
        store.close()
        store = SQLiteStore(path)
        with lock_prober(path) as longest_hold:
            figures = measure_ops(store, tokens, samples)
            started = time.perf_counter()
            purged = store.purge_expired()
            purge_seconds = time.perf_counter() - started
            figures["lock_max_ms"] = round(longest_hold(), 2)
        figures.update(
            rows=rows, purged=purged, bytes_per_session=round(size_bytes / rows),
            purge_per_s=round(purged / purge_seconds) if purged else None,
        )
        store.close()
        return figures


# --- PostgreSQL ---

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def measure_postgres(size: int, samples: int, url: str = POSTGRES_URL) -> Dict[str, Any]:
    """The SQL store on PostgreSQL, in tables of a prefix of its own (dropped at the end);
    filled with copies of seeded rows by one ``INSERT … SELECT`` over ``generate_series``."""
    import sqlalchemy as sa

    from wxmiddleware.stores.sql import SQLStore

    prefix = f"wxscale_{secrets.token_hex(4)}_"
    store = SQLStore.from_url(url, table_prefix=prefix)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    table = f"{prefix}sessions"
    try:
        tokens = seed(store, min(size, 1000))
        with engine.connect() as conn:
            now = "extract(epoch from now())"
            expired = f"(g % 1000) < {int(EXPIRED_SHARE * 1000)}"
            conn.execute(sa.text(
                f"INSERT INTO {table} (key, appid, openid, unionid, sealed_key, key_at,"
                " created_at, expires_at, idle_until)"
                " SELECT md5(g::text || random()::text) || md5(random()::text), s.appid,"
                " 'o' || md5(g::text), s.unionid, s.sealed_key, s.key_at, s.created_at,"
                f" CASE WHEN {expired} THEN {now} - 60 ELSE s.expires_at END,"
                f" CASE WHEN {expired} THEN {now} - 60 ELSE {now} + 3600 END"
                f" FROM (SELECT * FROM {table} LIMIT 1) s, generate_series(1, :n) g"
            ), {"n": max(0, size - len(tokens))})
            conn.execute(sa.text(f"VACUUM ANALYZE {table}"))
            rows = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            size_bytes = conn.execute(
                sa.text("SELECT pg_total_relation_size(:table)"), {"table": table}
            ).scalar_one()
        figures = measure_ops(store, tokens, samples)
        started = time.perf_counter()
        purged = store.purge_expired()
        purge_seconds = time.perf_counter() - started
        figures.update(
            rows=rows, purged=purged, bytes_per_session=round(size_bytes / rows),
            purge_per_s=round(purged / purge_seconds) if purged else None,
        )
        return figures
    finally:
        store.close()
        with engine.connect() as conn:
            for name in ("sessions", "codes", "values", "locks"):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {prefix}{name}"))
        engine.dispose()


# --- Redis ---


def measure_redis(size: int, samples: int, url: str) -> Dict[str, Any]:
    import redis

    from wxmiddleware.stores._redis_layout import Keys, token_id
    from wxmiddleware.stores.redis import RedisStore

    client = redis.Redis.from_url(url)
    client.flushdb()
    store = RedisStore(client)
    tokens = seed(store, min(size, 1000))
    template_keys = [key for key in client.scan_iter(match="wx:s:*", count=1000)]
    dumps = [client.dump(key) for key in template_keys[:100]]
    have = len(template_keys)
    pipe = client.pipeline(transaction=False)
    while have < size:
        for dump in dumps:
            pipe.restore(Keys("wx:").session(token_id(secrets.token_hex(32))), 3_600_000, dump)
        have += len(dumps)
        if len(pipe) >= 10_000:
            pipe.execute()
    pipe.execute()
    figures = measure_ops(store, tokens, samples)
    one = Keys("wx:").session(token_id(token_key(tokens[0])))
    session_keys = [one]
    index_keys = [key for key in client.scan_iter(match="wx:o:*", count=1000)][:200]
    session_bytes = statistics.mean(client.memory_usage(key) for key in session_keys)
    per_index = statistics.mean(
        client.memory_usage(key) / max(1, _members(client, key)) for key in index_keys
    )
    figures.update(rows=client.dbsize(), bytes_per_session=round(session_bytes + per_index))
    client.flushdb()
    client.close()
    return figures


def _members(client: Any, key: bytes) -> int:
    kind = client.type(key)
    return int({b"zset": client.zcard, b"set": client.scard, b"hash": client.hlen}
               .get(kind, lambda _: 1)(key))


# --- the run ---


def ratios(by_size: Dict[str, Dict[str, Any]], small: int, large: int) -> Dict[str, Any]:
    low, high = by_size.get(str(small)), by_size.get(str(large))
    if not low or not high:
        return {}
    out = {
        "login_p99": round(high["login"]["p99"] / low["login"]["p99"], 2),
        "lookup_p99": round(high["lookup"]["p99"] / low["lookup"]["p99"], 2),
    }
    if "lock_max_ms" in high:
        out["lock_max_ms"] = high["lock_max_ms"]
    return out


def measure(sizes: Sequence[int] = SIZES, stores: Sequence[str] = ("sqlite", "redis"),
            redis_url: Optional[str] = None, samples: int = SAMPLES) -> Dict[str, Any]:
    results: Dict[str, Any] = {}
    for name in stores:
        if name == "redis" and not redis_url:
            continue
        by_size: Dict[str, Any] = {}
        for size in sizes:
            print(f"   scale: {name} at {size} sessions", flush=True)
            if name == "sqlite":
                by_size[str(size)] = measure_sqlite(size, samples)
            elif name == "postgresql":
                by_size[str(size)] = measure_postgres(size, samples)
            else:
                by_size[str(size)] = measure_redis(size, samples, redis_url or "")
        by_size["ratios"] = ratios(by_size, min(sizes), max(sizes))
        results[name] = by_size
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=lambda t: [int(x) for x in t.split(",")], default=SIZES)
    parser.add_argument("--stores", type=lambda t: t.split(","), default=["sqlite", "redis"])
    parser.add_argument("--samples", type=int, default=SAMPLES)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = None
        if "redis" in args.stores and _bench.PrivateRedis.available:
            url = stack.enter_context(_bench.PrivateRedis()).url
        results = measure(args.sizes, args.stores, url, args.samples)
    print(json.dumps(results, indent=1))
    for name, by_size in results.items():
        print(f"{name}: {min(args.sizes)} -> {max(args.sizes)} sessions: {by_size['ratios']}"
              " (goals: login_p99 <= 2, lookup_p99 <= 1.5, lock_max_ms <= 50;"
              f" bytes/session {by_size[str(max(args.sizes))]['bytes_per_session']},"
              " Redis goal <= 500)")


if __name__ == "__main__":
    main()
