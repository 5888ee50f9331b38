"""How the stores behave as they grow: 10^3, 10^5 and 10^6 stored sessions, 15 % expired
(RESULTS.md, *As the store grows*, says what is measured and the goals). Filling copies
sessions saved through the store, in bulk and in its own layout, under fresh keys, openids and
deadlines. Run alone with ``python benchmarks/run_all.py --only scale`` (``--quick``: 10^3, 10^5).
"""

import contextlib
import functools
import secrets
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from statistics import mean, quantiles
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import redis

from wxmiddleware._sealing import Sealer
from wxmiddleware.session import SessionScope, WxSession, code_key, new_token, token_key
from wxmiddleware.stores._redis_layout import Keys, token_id
from wxmiddleware.stores.redis import RedisStore
from wxmiddleware.stores.sqlite import SQLiteStore
from wxmiddleware.testing.bulk import fill_sqlite_store

SIZES = (1_000, 100_000, 1_000_000)
EXPIRED_SHARE, IDLE, SAMPLES = 0.15, 7200, 2_000
LATENCIES = ("login", "lookup")
SCOPE = SessionScope("wxbench0000000000", Sealer(["scale-benchmark-store-key"]))


def session(openid: str) -> WxSession:
    now = time.time()
    return WxSession(openid, "k" * 24, None, now, now + 30 * 86400, appid=SCOPE.appid)


def percentiles(seconds: List[float]) -> Dict[str, float]:
    cuts = quantiles(seconds, n=100)
    return {"p50": round(cuts[49] * 1e6, 1), "p99": round(cuts[98] * 1e6, 1)}


def seed(store: Any, size: int) -> List[str]:
    """Saves half of ``size`` (at most 1000) sessions through the store, the rest copies."""
    tokens = [new_token() for _ in range(min(size // 2, 1000))]
    for n, token in enumerate(tokens):
        store.save(token, session(f"seed-{n}"), IDLE, SCOPE)
    return tokens


def measure_ops(store: Any, tokens: Sequence[str]) -> Dict[str, Any]:
    """Latencies (µs) of ``get`` of a live token; the rows (Redis: index entries)
    ``purge_expired`` removes and how fast; latencies of logins (``claim_code`` + ``save``)."""
    lookups: List[float] = []
    for index in range(SAMPLES):
        started = time.perf_counter()
        found = store.get(tokens[index % len(tokens)], IDLE, SCOPE)
        lookups.append(time.perf_counter() - started)
        assert found is not None
    started = time.perf_counter()  # before the logins, whose Redis saves purge a page per 20
    purged = store.purge_expired()
    rate = round(purged / (time.perf_counter() - started)) if purged else None
    logins: List[float] = []
    for index in range(SAMPLES // 4):
        started = time.perf_counter()
        store.claim_code(code_key(secrets.token_urlsafe(24)), 300)
        store.save(new_token(), session(f"login-{index}"), IDLE, SCOPE)
        logins.append(time.perf_counter() - started)
    figures = {"lookup": percentiles(lookups), "login": percentiles(logins), "purged": purged}
    return {**figures, "purge_per_s": rate}


@contextlib.contextmanager
def lock_prober(path: Path) -> Iterator[Callable[[], float]]:
    """Takes SQLite's write lock every millisecond; yields a function giving the longest
    wait so far (ms): the longest time anybody else held the lock."""
    longest, stopping = [0.0], threading.Event()

    def probe() -> None:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=60)) as conn:
            while not stopping.is_set():
                started = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                longest[0] = max(longest[0], (time.perf_counter() - started) * 1e3)
                conn.execute("COMMIT")
                time.sleep(0.001)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        yield lambda: longest[0]
    finally:
        stopping.set()
        thread.join()


def measure_sqlite(size: int) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sessions.db"
        with contextlib.closing(SQLiteStore(path)) as store:
            tokens = seed(store, size)
        fill_sqlite_store(path, size, EXPIRED_SHARE * size / (size - len(tokens)))
        rows = sqlite3.connect(path).execute("SELECT count(*) FROM wx_sessions").fetchone()[0]
        size_bytes = sum(p.stat().st_size for p in Path(folder).glob("sessions.db*"))
        # A fresh store, as a new worker opens it: its first login must not wait for upkeep.
        with contextlib.closing(SQLiteStore(path)) as store, lock_prober(path) as longest_hold:
            figures = measure_ops(store, tokens)
            figures["lock_max_ms"] = round(longest_hold(), 2)
        return {**figures, "rows": rows, "bytes_per_session": round(size_bytes / rows)}


def measure_redis(size: int, url: str) -> Dict[str, Any]:
    """Filled with ``RESTORE``s of seeded session keys under fresh names, each in a fresh
    user's index; an expired one is its index entry alone, as Redis's expiry leaves it."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    store, keys, days = RedisStore(client), Keys("wx:"), 30 * 86400
    tokens = seed(store, size)
    dumps = [client.dump(key) for key in list(client.scan_iter(match="wx:s:*", count=1000))[:100]]
    pipe, expired = client.pipeline(transaction=False), round(EXPIRED_SHARE * size)
    for n in range(size - len(tokens)):
        member, index = token_id(secrets.token_hex(32)), keys.index(f"fill-{n}")
        if n >= expired:
            pipe.restore(keys.session(member), 3_600_000, dumps[n % len(dumps)])
        pipe.zadd(index, {member: time.time() + days}).expire(index, days)
        if len(pipe) >= 10_000:
            pipe.execute()
    pipe.execute()
    figures = measure_ops(store, tokens)
    session_bytes = client.memory_usage(keys.session(token_id(token_key(tokens[0]))))
    index_keys = list(client.scan_iter(match="wx:o:*", count=1000))[:200]
    shares = [client.memory_usage(key) / max(1, client.zcard(key)) for key in index_keys]
    figures.update(rows=client.dbsize(), bytes_per_session=round(session_bytes + mean(shares)))
    client.flushdb()
    client.close()
    return figures


def measure(sizes: Sequence[int] = SIZES, redis_url: Optional[str] = None) -> Dict[str, Any]:
    """Each store at each size, and the p99 latencies at the largest over the smallest."""
    measures: Dict[str, Callable[[int], Dict[str, Any]]] = {"sqlite": measure_sqlite}
    if redis_url:
        measures["redis"] = functools.partial(measure_redis, url=redis_url)
    results: Dict[str, Any] = {}
    for name, measure_store in measures.items():
        by_size: Dict[str, Any] = {}
        for size in sizes:
            print(f"   scale: {name} at {size} sessions", flush=True)
            by_size[str(size)] = measure_store(size)
        low, high = by_size[str(min(sizes))], by_size[str(max(sizes))]
        ratios = {f"{op}_p99": round(high[op]["p99"] / low[op]["p99"], 2) for op in LATENCIES}
        ratios.update({key: high[key] for key in ("lock_max_ms",) if key in high})
        results[name] = {**by_size, "ratios": ratios}
    return results
