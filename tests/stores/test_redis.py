"""RedisStore and AsyncRedisStore against real Redis servers, beyond the store contract
(test_contract.py runs that on both).

Keys, TTLs and indexes run on both stores against the shared test server (TTLs are Redis's
own, so expiry is tested with short TTLs and real sleeps). Command counting, failure and
recovery run on private servers that the tests start, kill and restart.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

redis = pytest.importorskip("redis")

from webtest import TestApp  # noqa: E402 - after the importorskip that guards this module

from tests.redis_support import (  # noqa: E402
    SHARED_URL,
    RedisServer,
    delete_prefixed,
    private_redis,
    private_sentinel,
    shared_client,
    unique_prefix,
)
from tests.stores.support import SCOPE, Blocking, app_scope, make_session  # noqa: E402
from tests.tls_support import write_tls_files  # noqa: E402
from wxmiddleware import WxConfig, WxMiddleware  # noqa: E402
from wxmiddleware.errors import ConfigError, StoreUnavailable  # noqa: E402
from wxmiddleware.session import (  # noqa: E402
    ClaimState,
    CodeClaim,
    WxSession,
    claim_used,
    code_key,
    new_token,
    seal_token,
    short_hash,
    token_key,
)
from wxmiddleware.stores import _records, open_store  # noqa: E402
from wxmiddleware.stores import _redis_layout as redis_layout  # noqa: E402
from wxmiddleware.stores import redis as redis_stores  # noqa: E402
from wxmiddleware.stores.base import PURGE_BATCH  # noqa: E402
from wxmiddleware.stores.redis import AsyncRedisStore, RedisStore  # noqa: E402
from wxmiddleware.testing import FakeWeChat  # noqa: E402
from wxmiddleware.testing.model import new_session_key  # noqa: E402

pytestmark = pytest.mark.redis

IDLE = 7200


def session_key_name(prefix: str, token: str) -> str:
    """The Redis key of ``token``'s session (named by its compact digest)."""
    return redis_layout.Keys(prefix).session(redis_layout.token_id(token_key(token)))


# --- fixtures ---


@pytest.fixture(scope="module")
def shared() -> Iterator[Any]:
    client = shared_client()
    yield client
    client.close()


@pytest.fixture
def prefix(shared: Any) -> Iterator[str]:
    chosen = unique_prefix()
    yield chosen
    delete_prefixed(shared, chosen)


@pytest.fixture(params=["sync", "async"])
def store(request: pytest.FixtureRequest, prefix: str) -> Iterator[Any]:
    """A RedisStore, or an AsyncRedisStore driven synchronously: one contract for both."""
    opened: Any
    if request.param == "sync":
        opened = RedisStore.from_url(SHARED_URL, key_prefix=prefix)
    else:
        opened = Blocking(AsyncRedisStore.from_url(SHARED_URL, key_prefix=prefix))
    yield opened
    opened.close()


def session_ttl_ms(client: Any, prefix: str, token: str) -> int:
    return int(client.pttl(session_key_name(prefix, token)))


# --- what each store writes in Redis (the contract itself is in test_contract.py) ---


def test_get_slides_the_ttl_to_idle_ttl(store: Any, shared: Any, prefix: str) -> None:
    token = new_token()
    store.save(token, make_session(), 100, SCOPE)
    assert 99_000 < session_ttl_ms(shared, prefix, token) <= 100_000
    store.get(token, 600, SCOPE)
    assert 599_000 < session_ttl_ms(shared, prefix, token) <= 600_000


def test_value_past_its_expiry_is_none_and_dropped(store: Any, shared: Any, prefix: str) -> None:
    # A value whose absolute expiry passed while its key lived on (clock skew between app
    # servers): refused, and the key deleted.
    token = new_token()
    key = session_key_name(prefix, token)
    shared.set(key, _records.encode(make_session(max_age=-5), SCOPE), ex=60)
    assert store.get(token, IDLE, SCOPE) is None
    assert not shared.exists(key)


def test_sessions_for_skips_and_unindexes_expired(store: Any, shared: Any, prefix: str) -> None:
    idle = new_token()
    store.save(idle, make_session(), IDLE, SCOPE)
    live = new_token()
    store.save(live, make_session(), IDLE, SCOPE)
    index = redis_layout.Keys(prefix).index("o-alice")
    assert shared.zcard(index) == 2
    shared.delete(session_key_name(prefix, idle))  # as Redis does when its idle TTL ends
    assert [info.key_hash for info in store.sessions_for("o-alice")] == [
        short_hash(token_key(live))
    ]
    assert shared.zcard(index) == 1


def test_revoke_all_counts_only_live_sessions(store: Any, shared: Any, prefix: str) -> None:
    idle = new_token()
    store.save(idle, make_session(), IDLE, SCOPE)
    store.save(new_token(), make_session(), IDLE, SCOPE)
    shared.delete(session_key_name(prefix, idle))  # as Redis does when its idle TTL ends
    assert store.revoke_all("o-alice", SCOPE) == 1


def test_index_lives_as_long_as_its_longest_session(store: Any, shared: Any, prefix: str) -> None:
    index = redis_layout.Keys(prefix).index("o-alice")
    store.save(new_token(), make_session(max_age=1000), IDLE, SCOPE)
    assert 999_000 < shared.pttl(index) <= 1_000_000
    store.save(new_token(), make_session(max_age=100), IDLE, SCOPE)  # a shorter one keeps it
    assert 999_000 < shared.pttl(index) <= 1_000_000
    store.save(new_token(), make_session(max_age=5000), IDLE, SCOPE)
    assert 4_999_000 < shared.pttl(index) <= 5_000_000


def test_index_drops_entries_past_their_absolute_expiry(
    store: Any, shared: Any, prefix: str
) -> None:
    index = redis_layout.Keys(prefix).index("o-alice")
    store.save(new_token(), make_session(max_age=0.05), IDLE, SCOPE)
    time.sleep(0.1)
    live = new_token()
    store.save(live, make_session(), IDLE, SCOPE)
    members = [m.decode() for m in shared.zrange(index, 0, -1)]
    assert members == [redis_layout.token_id(token_key(live))]


def test_completing_a_claim_keeps_its_ttl(store: Any, shared: Any, prefix: str) -> None:
    code = "code-1"
    key = code_key(code)
    assert store.claim_code(key, 300).state is ClaimState.OWNER
    token = new_token()
    store.save(
        token, make_session(), IDLE, SCOPE, code_key=key, sealed_token=seal_token(code, token)
    )
    assert 290 < shared.ttl(f"{prefix}c:{key}") <= 300


def test_completing_an_expired_claim_writes_no_record(store: Any, shared: Any, prefix: str) -> None:
    key = code_key("code-1")
    assert store.claim_code(key, 300).state is ClaimState.OWNER
    shared.delete(f"{prefix}c:{key}")  # as Redis does when code_ttl ends
    token = new_token()
    store.save(
        token, make_session(), IDLE, SCOPE, code_key=key, sealed_token=seal_token("code-1", token)
    )
    assert store.get(token, IDLE, SCOPE) is not None
    assert (
        store.claim_code(key, 300).state is ClaimState.OWNER
    )  # no record without a TTL was left behind


def test_purge_expired_unindexes_sessions_redis_expired(
    store: Any, shared: Any, prefix: str
) -> None:
    short, live = new_token(), new_token()
    store.save(short, make_session(), 1, SCOPE)
    store.save(live, make_session(), IDLE, SCOPE)
    store.save(new_token(), make_session(openid="o-bob"), 1, SCOPE)
    assert store.claim_code(code_key("old"), 1).state is ClaimState.OWNER
    time.sleep(1.1)
    index = redis_layout.Keys(prefix).index("o-alice")
    assert shared.zcard(index) == 2  # Redis expired the session, not its index entry

    reports: List[int] = []
    assert store.purge_expired(reports.append) == 2
    assert reports == [2]
    assert shared.zrange(index, 0, -1) == [redis_layout.token_id(token_key(live)).encode()]
    assert not shared.exists(redis_layout.Keys(prefix).index("o-bob"))  # its last entry went
    assert store.delete(short) is False
    assert store.claim_code(code_key("old"), 1).state is ClaimState.OWNER
    assert store.get(live, IDLE, SCOPE) is not None
    assert store.purge_expired() == 0


def test_purge_expired_reports_every_batch(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # No maintenance step on a save: on a slow machine the first sessions expire while the
    # last are saved, and a step would unindex them before the purge counts them.
    monkeypatch.setattr("wxmiddleware.stores._redis_ops.MAINTENANCE_EVERY", 10**9)
    users = PURGE_BATCH + 10
    for index in range(users):
        store.save(new_token(), make_session(openid=f"o-{index}"), 1, SCOPE)
    time.sleep(1.1)
    reports: List[int] = []
    assert store.purge_expired(reports.append) == users
    assert len(reports) >= 2 and reports == sorted(reports) and reports[-1] == users


def test_purge_expired_stays_within_its_prefix(shared: Any, prefix: str) -> None:
    # A prefix with glob characters: unescaped, its SCAN pattern would match the other one.
    starred = RedisStore.from_url(SHARED_URL, key_prefix=prefix + "*:")
    other = RedisStore.from_url(SHARED_URL, key_prefix=prefix + "x:")
    other.save(new_token(), make_session(), 1, SCOPE)
    time.sleep(1.1)
    assert starred.purge_expired() == 0
    assert shared.zcard(redis_layout.Keys(prefix + "x:").index("o-alice")) == 1
    assert other.purge_expired() == 1
    starred.close()
    other.close()


def test_lock_is_exclusive_across_clients(prefix: str) -> None:
    # Eight threads, each with a store (and so a connection pool) of its own, plus an asyncio
    # client in the main thread, all at once: exactly one owner.
    stores = [RedisStore.from_url(SHARED_URL, key_prefix=prefix) for _ in range(8)]
    barrier = threading.Barrier(len(stores) + 1)
    owners: List[Optional[str]] = []

    def take(store: RedisStore) -> None:
        barrier.wait()
        owners.append(store.acquire_lock("refresh", 30))

    threads = [threading.Thread(target=take, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()

    async def take_async() -> Optional[str]:
        async_store = AsyncRedisStore.from_url(SHARED_URL, key_prefix=prefix)
        try:
            await async_store.get_value("warm-up")  # connect before the race
            barrier.wait()
            return await async_store.acquire_lock("refresh", 30)
        finally:
            await async_store.aclose()

    owners.append(asyncio.run(take_async()))
    for thread in threads:
        thread.join(10)
    held = [owner for owner in owners if owner is not None]
    assert len(owners) == 9 and len(held) == 1
    assert stores[0].release_lock("refresh", held[0]) is True  # any client may release it
    for store in stores:
        store.close()


def test_lock_retried_after_it_landed_still_holds_it(prefix: str) -> None:
    # What a redis-py retry does when the first SET NX reached Redis but its answer was lost.
    store = RedisStore.from_url(SHARED_URL, key_prefix=prefix)
    commands = redis_layout.lock_commands(redis_layout.Keys(prefix), "refresh", "mine", 30)
    redis_stores._send(store.client, redis_layout.Batch(commands))
    again = redis_stores._send(store.client, redis_layout.Batch(commands))
    assert redis_layout.lock_result(again, "mine") == "mine"
    assert redis_layout.lock_result(again, "theirs") is None
    store.close()


def test_key_layout(store: Any, shared: Any, prefix: str) -> None:
    token = new_token()
    code = "code-layout"
    key = code_key(code)
    assert store.claim_code(key, 300).state is ClaimState.OWNER
    session = make_session()
    store.save(token, session, IDLE, SCOPE, code_key=key, sealed_token=seal_token(code, token))
    keys = {k.decode() for k in shared.scan_iter(match=prefix + "*")}
    assert keys == {
        session_key_name(prefix, token),
        redis_layout.Keys(prefix).index(session.openid),
        f"{prefix}c:{key}",
    }
    raw = shared.get(session_key_name(prefix, token))
    assert _records.decode(raw, SCOPE) == session
    assert session.session_key.encode() not in raw
    assert all(shared.pttl(k) > 0 for k in keys)  # nothing lives forever


# --- concurrency ---


def test_claim_is_atomic_across_threads(prefix: str) -> None:
    store = RedisStore.from_url(SHARED_URL, key_prefix=prefix)
    key = code_key("contended")
    barrier = threading.Barrier(16)
    results: List[CodeClaim] = []

    def claim() -> None:
        barrier.wait()
        results.append(store.claim_code(key, 300))

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    store.close()
    states = [claim.state for claim in results]
    assert (states.count(ClaimState.OWNER), states.count(ClaimState.PENDING), len(states)) == (
        1,
        15,
        16,
    )


def test_claim_is_atomic_across_tasks(prefix: str) -> None:
    async def main() -> List[CodeClaim]:
        store = AsyncRedisStore.from_url(SHARED_URL, key_prefix=prefix)
        key = code_key("contended")
        try:
            return list(await asyncio.gather(*(store.claim_code(key, 300) for _ in range(16))))
        finally:
            await store.aclose()

    results = asyncio.run(main())
    states = [claim.state for claim in results]
    assert (states.count(ClaimState.OWNER), states.count(ClaimState.PENDING), len(states)) == (
        1,
        15,
        16,
    )


def test_claim_retried_after_it_landed_still_owns_the_code(prefix: str) -> None:
    # What a redis-py retry does when the first SET NX reached Redis but its answer was lost.
    store = RedisStore.from_url(SHARED_URL, key_prefix=prefix)
    keys = redis_layout.Keys(prefix)
    commands = redis_layout.claim_commands(keys, code_key("c"), "p:mine", 300)
    first = redis_stores._send(store.client, redis_layout.Batch(commands))
    again = redis_stores._send(store.client, redis_layout.Batch(commands))
    assert redis_layout.claim_result(first, "p:mine").state is ClaimState.OWNER
    assert redis_layout.claim_result(again, "p:mine").state is ClaimState.OWNER
    assert redis_layout.claim_result(again, "p:theirs").state is ClaimState.PENDING
    store.close()


# --- what Redis holds ---


def dump_database(client: Any) -> Dict[bytes, bytes]:
    """Every key of the database and a rendering of its value, whatever its type."""
    dumped: Dict[bytes, bytes] = {}
    for key in client.scan_iter(count=500):
        kind = client.type(key)
        if kind == b"string":
            value = client.get(key) or b""
        elif kind == b"zset":
            value = b" ".join(client.zrange(key, 0, -1))
        elif kind == b"set":
            value = b" ".join(client.smembers(key))
        elif kind == b"hash":
            value = b" ".join(b"%s=%s" % item for item in client.hgetall(key).items())
        elif kind == b"list":
            value = b" ".join(client.lrange(key, 0, -1))
        else:
            value = b""
        dumped[key] = value
    return dumped


def test_no_key_or_value_holds_a_token_code_or_session_key_in_clear(
    fake_wechat: FakeWeChat, shared: Any, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued: List[str] = []

    def record_key() -> str:
        issued.append(new_session_key())
        return issued[-1]

    monkeypatch.setattr(fake_wechat, "session_key_factory", record_key)
    store = RedisStore.from_url(SHARED_URL, key_prefix=prefix)
    app = TestApp(wsgi_app(fake_wechat, store))
    tokens, codes = [], []
    for user in ("alice", "alice", "bob"):
        code = fake_wechat.issue_code(user)
        codes.append(code)
        token = app.post_json("/wx/login", {"code": code}).json["3rd_session"]
        tokens.append(token)
        assert app.get("/api/me", headers={"3rd-session": token}).status_int == 200
    store.close()

    dumped = dump_database(shared)  # the whole database, not only this test's keys
    mine = {k: v for k, v in dumped.items() if k.startswith(prefix.encode())}
    assert len(mine) == 3 + 2 + 3  # sessions, indexes, code records
    blob = b"\n".join(k + b" " + v for k, v in dumped.items())
    # The check reads the values it means to (other tests may be writing the database too).
    assert b"\n".join(mine.values()).count(b'{"kt":') == 3
    assert len(issued) == 3
    for secret in tokens + codes + issued:
        assert secret.encode() not in blob
    for token in tokens:
        assert session_key_name(prefix, token).encode() in blob


def test_memory_per_session(shared: Any, prefix: str) -> None:
    store = RedisStore.from_url(SHARED_URL, key_prefix=prefix)
    # Realistic sizes: 28-character openid and unionid, 24-character session_key.
    openid, unionid, session_key = "o" + "x" * 27, "u" + "y" * 27, "s" * 24
    code = "c" * 32
    key = code_key(code)
    assert store.claim_code(key, 300).state is ClaimState.OWNER
    token = new_token()
    session = make_session(openid=openid, unionid=unionid, session_key=session_key)
    store.save(token, session, IDLE, SCOPE, code_key=key, sealed_token=seal_token(code, token))
    session_bytes = shared.memory_usage(session_key_name(prefix, token))
    index_one = shared.memory_usage(redis_layout.Keys(prefix).index(openid))
    for _ in range(9):
        store.save(new_token(), make_session(openid=openid), IDLE, SCOPE)
    index_ten = shared.memory_usage(redis_layout.Keys(prefix).index(openid))
    code_bytes = shared.memory_usage(f"{prefix}c:{key}")
    store.close()
    print(
        f"\nRedis MEMORY USAGE: session {session_bytes} B, openid index {index_one} B"
        f" (+{(index_ten - index_one) / 9:.0f} B per further session), code record"
        f" {code_bytes} B for {300} s"
    )
    assert session_bytes < 512
    assert index_ten < 2048


# --- clients, URLs and options ---


def test_decode_responses_client(prefix: str) -> None:
    store = RedisStore(redis.Redis.from_url(SHARED_URL, decode_responses=True), key_prefix=prefix)
    token = new_token()
    code = "code-str"
    assert store.claim_code(code_key(code), 300).state is ClaimState.OWNER
    session = make_session()
    store.save(token, session, IDLE, SCOPE, code_key(code), seal_token(code, token))
    assert store.get(token, IDLE, SCOPE) == session
    assert store.claim_code(code_key(code), 300) == claim_used(seal_token(code, token))
    assert [i.key_hash for i in store.sessions_for("o-alice")] == [short_hash(token_key(token))]
    assert store.revoke_all("o-alice", SCOPE) == 1
    store.client.close()


def test_from_url_sets_request_path_options() -> None:
    store = RedisStore.from_url("redis://127.0.0.1:6379/13")
    kwargs = store.client.connection_pool.connection_kwargs
    assert kwargs["socket_connect_timeout"] == redis_stores.CONNECT_TIMEOUT == 0.5
    assert kwargs["socket_timeout"] == redis_stores.SOCKET_TIMEOUT == 0.5
    assert kwargs["health_check_interval"] == 0
    retry = kwargs["retry"]
    assert retry._retries == 1
    assert retry._supported_errors == (redis.ConnectionError,)
    # Options passed in, then the URL's query, override the defaults.
    store = RedisStore.from_url("redis://h/0?socket_timeout=2", socket_connect_timeout=1)
    kwargs = store.client.connection_pool.connection_kwargs
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (1, 2)


def test_open_store_builds_a_redis_store() -> None:
    store = open_store("redis://127.0.0.1:6379/13", "wx1")
    assert isinstance(store, RedisStore)
    assert store.client.connection_pool.connection_kwargs["db"] == 13
    tls = open_store("rediss://u:hunter2@cache.example:6380/2", "wx1")
    assert isinstance(tls, RedisStore)
    assert tls.client.connection_pool.connection_class is redis.SSLConnection


@pytest.mark.parametrize("url", ["redis://:hunter2@cache:notaport/0", "redis://h/0?db=x&p=hunter2"])
def test_malformed_url_is_a_config_error_without_secrets(url: str) -> None:
    for build in (RedisStore.from_url, AsyncRedisStore.from_url, lambda u: open_store(u, "wx1")):
        with pytest.raises(ConfigError) as excinfo:
            build(url)
        assert "hunter2" not in str(excinfo.value)


def test_open_store_without_redis_py_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    import wxmiddleware.stores as stores_package

    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "wxmiddleware.stores.redis")
    monkeypatch.delattr(stores_package, "redis")
    with pytest.raises(ConfigError, match=r'pip install "wxmiddleware\[redis\]"') as excinfo:
        open_store("redis://:hunter2@cache:6379/0", "wx1")
    assert "hunter2" not in str(excinfo.value)


def test_redis_py_is_imported_only_when_asked_for() -> None:
    import subprocess
    import sys

    code = (
        "import sys, wxmiddleware, wxmiddleware.stores;"
        "assert 'redis' not in sys.modules, 'imported at package import';"
        "from wxmiddleware import RedisStore, AsyncRedisStore;"
        "assert 'redis' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_key_prefix_must_be_a_string() -> None:
    with pytest.raises(ConfigError):
        RedisStore(redis.Redis(), key_prefix=None)  # type: ignore[arg-type]


def test_async_store_rejects_what_is_not_a_client() -> None:
    with pytest.raises(ConfigError):
        AsyncRedisStore(redis.Redis())  # type: ignore[arg-type]


def test_async_store_makes_one_client_per_event_loop_lazily(prefix: str) -> None:
    made: List[Tuple[Any, asyncio.AbstractEventLoop]] = []

    def factory() -> Any:
        client = redis.asyncio.Redis.from_url(SHARED_URL)
        made.append((client, asyncio.get_running_loop()))  # raises outside a running loop
        return client

    store = AsyncRedisStore(factory, key_prefix=prefix)
    assert made == []  # nothing built at construction
    token = new_token()

    async def use() -> None:
        await store.save(token, make_session(), IDLE, SCOPE)
        assert await store.get(token, IDLE, SCOPE) is not None
        assert await store.get(token, IDLE, SCOPE) is not None

    async def use_and_close() -> None:
        await use()
        await store.aclose()

    asyncio.run(use())
    assert len(made) == 1
    asyncio.run(use_and_close())  # a new loop: a new client, never the first one
    assert len(made) == 2
    assert made[0][0] is not made[1][0]
    assert made[0][1] is not made[1][1]


def test_async_store_over_a_given_client(prefix: str) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis.from_url(SHARED_URL)
        store = AsyncRedisStore(client, key_prefix=prefix)
        token = new_token()
        await store.save(token, make_session(), IDLE, SCOPE)
        assert await store.get(token, IDLE, SCOPE) is not None
        await store.aclose()  # the client is the caller's: still usable
        assert await store.get(token, IDLE, SCOPE) is not None
        await client.aclose()

    asyncio.run(main())


def test_wsgi_and_asgi_stores_read_each_other(prefix: str) -> None:
    sync = RedisStore.from_url(SHARED_URL, key_prefix=prefix)
    token = new_token()
    session = make_session(unionid="u-1")
    sync.save(token, session, IDLE, SCOPE)

    async def main() -> Optional[WxSession]:
        store = AsyncRedisStore.from_url(SHARED_URL, key_prefix=prefix)
        found = await store.get(token, IDLE, SCOPE)
        other = new_token()
        await store.save(other, make_session(), IDLE, SCOPE)
        assert sync.get(other, IDLE, SCOPE) is not None
        assert await store.delete(token) is True
        await store.aclose()
        return found

    assert asyncio.run(main()) == session
    assert sync.get(token, IDLE, SCOPE) is None
    sync.close()


def test_wsgi_and_asgi_middleware_on_one_redis_url(fake_wechat: FakeWeChat) -> None:
    # Both built from WxConfig(store=URL), as WX_SESSION_STORE would: the default prefix.
    asgi = pytest.importorskip("wxmiddleware.asgi")
    httpx = pytest.importorskip("httpx")
    config = make_config(fake_wechat).with_options(store=SHARED_URL)
    wsgi_middleware = WxMiddleware(InnerApp(), config=config)
    assert isinstance(wsgi_middleware.store, RedisStore)
    wsgi = TestApp(wsgi_middleware)
    user = unique_prefix()  # an openid, and so an index key, that no concurrent run shares
    openid = fake_wechat.openid_for(user)

    async def inner(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        body = json.dumps({"openid": scope["wxmiddleware.openid"]}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def main() -> None:
        app = asgi.WxASGIMiddleware(inner, config=config)
        assert isinstance(app.store, AsyncRedisStore)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            from_wsgi = wsgi.post_json("/wx/login", {"code": fake_wechat.issue_code(user)})
            token = from_wsgi.json["3rd_session"]
            answer = await client.get("/api/me", headers={"3rd-session": token})
            assert answer.json() == {"openid": openid}
            assert (
                await client.post("/wx/logout", headers={"3rd-session": token})
            ).status_code == 204
            gone = wsgi.get("/api/me", headers={"3rd-session": token}, expect_errors=True)
            assert gone.status_int == 401

            code = fake_wechat.issue_code(user)
            from_asgi = await client.post("/wx/login", json={"code": code})
            token = from_asgi.json()["3rd_session"]
            assert wsgi.get("/api/me", headers={"3rd-session": token}).status_int == 200
            assert (await app.store.revoke_all(openid, app_scope(fake_wechat))) == 1
            assert (
                wsgi.get("/api/me", headers={"3rd-session": token}, expect_errors=True).status_int
                == 401
            )
        await app.store.aclose()

    asyncio.run(main())
    wsgi_middleware.store.close()


# --- failures ---


def assert_unavailable(error: StoreUnavailable, *secrets: str) -> None:
    assert error.status == 503
    assert error.message == StoreUnavailable.default_message
    assert error.detail is not None and error.detail.startswith("Redis: ")
    for secret in secrets:
        assert secret not in error.message and secret not in error.detail


def test_unreachable_server_is_unavailable_quickly(tmp_path: Path) -> None:
    from tests.e2e.servers import free_port

    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    store = RedisStore.from_url(url)
    token = new_token()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as excinfo:
        store.get(token, IDLE, SCOPE)
    assert time.monotonic() - started < 5
    assert_unavailable(excinfo.value, token, token_key(token), "hunter2")
    detail = excinfo.value.detail or ""
    assert "ConnectionError" in detail and short_hash(token_key(token)) in detail
    for call in (
        lambda: store.save(token, make_session(), IDLE, SCOPE),
        lambda: store.delete(token),
        lambda: store.revoke_all("o-alice", SCOPE),
        lambda: store.sessions_for("o-alice"),
        lambda: store.claim_code(code_key("c"), 300),
        lambda: store.release_code(code_key("c")),
        lambda: store.revoke_session("o-alice", "0123456789ab"),
        lambda: store.purge_expired(),
        lambda: store.get_value("v"),
        lambda: store.set_value("v", "x", 60),
        lambda: store.delete_value("v"),
        lambda: store.acquire_lock("l", 60),
        lambda: store.release_lock("l", "owner"),
    ):
        with pytest.raises(StoreUnavailable):
            call()

    async def main() -> StoreUnavailable:
        async_store = AsyncRedisStore.from_url(url)
        try:
            await async_store.get(token, IDLE, SCOPE)
        except StoreUnavailable as error:
            return error
        finally:
            await async_store.aclose()
        raise AssertionError("no StoreUnavailable")

    assert_unavailable(asyncio.run(main()), token, "hunter2")


def test_wrong_type_under_a_key_is_unavailable(store: Any, shared: Any, prefix: str) -> None:
    token = new_token()
    shared.rpush(session_key_name(prefix, token), "x")
    with pytest.raises(StoreUnavailable) as excinfo:
        store.get(token, IDLE, SCOPE)
    assert "ResponseError (WRONGTYPE)" in (excinfo.value.detail or "")
    assert_unavailable(excinfo.value, token)


def test_undecodable_session_is_unavailable(store: Any, shared: Any, prefix: str) -> None:
    token = new_token()
    shared.set(session_key_name(prefix, token), b"not json", ex=60)
    with pytest.raises(StoreUnavailable) as excinfo:
        store.get(token, IDLE, SCOPE)
    assert_unavailable(excinfo.value, token)


# --- through the middleware, on private servers ---


class InnerApp:
    """The wrapped WSGI app: answers with the openid, and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        self.calls += 1
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"openid": environ.get("wxmiddleware.openid")}).encode()]


def make_config(fake: FakeWeChat) -> WxConfig:
    return WxConfig(
        appid=fake.appid,
        secret=fake.secret,
        api_base=fake.url,
        public_paths=("/health",),
        connect_timeout=0.5,
        read_timeout=2,
    )


def wsgi_app(fake: FakeWeChat, store: Any, inner: Any = None) -> WxMiddleware:
    return WxMiddleware(inner or InnerApp(), config=make_config(fake), store=store)


def command_calls(client: Any) -> Dict[str, int]:
    """``INFO commandstats`` as {command: calls}, without the test's own INFO and CONFIG."""
    stats = client.info("commandstats")
    calls = {name[len("cmdstat_") :]: int(value["calls"]) for name, value in stats.items()}
    return {name: n for name, n in calls.items() if not name.startswith(("info", "config"))}


def counting_connection_class() -> Any:
    class CountingConnection(redis.Connection):  # type: ignore[misc]
        """Counts what it sends: one send is one round trip (a pipeline is one send)."""

        sends = 0

        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            type(self).sends += 1
            super().send_packed_command(command, check_health)

    return CountingConnection


def test_one_redis_command_per_authenticated_request(
    fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    with private_redis(tmp_path) as server:
        stats = server.client()
        stats.ping()
        connection_class = counting_connection_class()
        store = RedisStore.from_url(server.url(), connection_class=connection_class)
        app = TestApp(wsgi_app(fake_wechat, store))
        store.client.ping()  # connect first: the handshake is per connection, not per request

        # A login, measured.
        stats.config_resetstat()
        sends = connection_class.sends
        token = app.post_json("/wx/login", {"code": fake_wechat.issue_code()}).json["3rd_session"]
        login_round_trips = connection_class.sends - sends
        login_calls = command_calls(stats)

        # N authenticated requests.
        n = 50
        assert app.get("/api/me", headers={"3rd-session": token}).status_int == 200  # warm
        stats.config_resetstat()
        sends = connection_class.sends
        for _ in range(n):
            assert app.get("/api/me", headers={"3rd-session": token}).status_int == 200
        request_calls = command_calls(stats)
        request_round_trips = connection_class.sends - sends
        store.close()
        stats.close()

    script_internal = {"zadd", "zremrangebyscore", "zrange", "pexpire"}
    sent = sum(n for name, n in login_calls.items() if name not in script_internal)
    print(
        f"\nper authenticated request: {request_calls} over {n} requests;"
        f" per login: {sent} commands sent ({login_calls}, of which"
        f" {sorted(script_internal & set(login_calls))} run inside the index script),"
        f" {login_round_trips} round trips"
    )
    assert request_calls == {"getex": n}
    assert request_round_trips == n
    assert login_calls == {
        "set": 3,  # the claim, the session, the completed code record
        "get": 1,  # the claim's read-back
        "zrange": 2,  # in the index script, and the index read back in the transaction
        "multi": 1,
        "exec": 1,
        "eval": 1,  # the openid index
        **{name: 1 for name in script_internal - {"zrange"}},
    }
    assert sent == 7
    assert login_round_trips == 2


def test_one_redis_command_per_authenticated_asgi_request(
    fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    asgi = pytest.importorskip("wxmiddleware.asgi")
    httpx = pytest.importorskip("httpx")

    async def inner(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with private_redis(tmp_path) as server:
        stats = server.client()
        n = 50

        async def main() -> None:
            store = AsyncRedisStore.from_url(server.url())
            app = asgi.WxASGIMiddleware(inner, config=make_config(fake_wechat), store=store)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                login = await client.post("/wx/login", json={"code": fake_wechat.issue_code()})
                headers = {"3rd-session": login.json()["3rd_session"]}
                assert (await client.get("/api/me", headers=headers)).status_code == 200
                stats.config_resetstat()
                for _ in range(n):
                    assert (await client.get("/api/me", headers=headers)).status_code == 200
            await store.aclose()

        asyncio.run(main())
        assert command_calls(stats) == {"getex": n}
        stats.close()


def test_session_near_its_absolute_expiry_costs_a_second_command(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        stats = server.client()
        store = RedisStore.from_url(server.url())
        token = new_token()
        store.save(token, make_session(max_age=60), IDLE, SCOPE)
        stats.config_resetstat()
        assert store.get(token, IDLE, SCOPE) is not None
        assert command_calls(stats) == {"getex": 1, "pexpire": 1}
        store.close()
        stats.close()


class Traffic:
    """Threads that keep calling a protected path and record every answer."""

    def __init__(self, app: TestApp, token: str, threads: int = 4) -> None:
        self.app = app
        self.token = token
        # (status, error word, seconds taken, when it started on the monotonic clock)
        self.answers: List[Tuple[int, str, float, float]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            response = self.app.get(
                "/api/me", headers={"3rd-session": self.token}, expect_errors=True
            )
            error = response.json.get("error", "") if response.status_int != 200 else ""
            elapsed = time.monotonic() - started
            self.answers.append((response.status_int, error, elapsed, started))

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def assert_503_json(response: Any) -> None:
    assert response.status_int == 503, response.text
    assert response.content_type == "application/json"
    assert response.json["error"] == "store_unavailable"


def test_redis_killed_under_traffic_fails_closed_then_recovers(
    fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    with private_redis(tmp_path) as server:
        inner = InnerApp()
        store = RedisStore.from_url(server.url())
        app = TestApp(wsgi_app(fake_wechat, store, inner))
        token = app.post_json("/wx/login", {"code": fake_wechat.issue_code()}).json["3rd_session"]
        assert app.get("/api/me", headers={"3rd-session": token}).status_int == 200

        with Traffic(app, token) as traffic:
            time.sleep(0.3)
            server.kill()
            killed_at = time.monotonic()
            time.sleep(1.5)
        calls_before = inner.calls
        # Every request that started once the server was gone (one under way may still end 200).
        during = [answer for answer in traffic.answers if answer[3] > killed_at]
        others = [answer for answer in during if answer[0] != 503]
        assert during and not others, others[:5]
        assert {error for _, error, _, _ in during} == {"store_unavailable"}
        assert {status for status, _, _, _ in traffic.answers} <= {200, 503}

        timings = []
        for _ in range(5):
            started = time.monotonic()
            assert_503_json(app.get("/api/me", headers={"3rd-session": token}, expect_errors=True))
            assert_503_json(
                app.post_json("/wx/login", {"code": fake_wechat.issue_code()}, expect_errors=True)
            )
            assert_503_json(
                app.post("/wx/logout", headers={"3rd-session": token}, expect_errors=True)
            )
            timings.append((time.monotonic() - started) / 3)
        assert inner.calls == calls_before  # nothing reached the app unauthenticated
        assert app.get("/health").status_int == 200  # public paths need no store
        print(f"\nRedis killed: 503 after {max(timings) * 1000:.0f} ms at most")
        assert max(timings) < 5

        server.start()  # the same port, empty: no persistence
        assert (
            app.get("/api/me", headers={"3rd-session": token}, expect_errors=True).status_int == 401
        )
        fresh = app.post_json("/wx/login", {"code": fake_wechat.issue_code()}).json["3rd_session"]
        assert app.get("/api/me", headers={"3rd-session": fresh}).status_int == 200
        store.close()


def test_redis_hung_fails_closed_within_the_socket_timeout(
    fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    import os
    import signal

    with private_redis(tmp_path) as server:
        store = RedisStore.from_url(server.url())
        app = TestApp(wsgi_app(fake_wechat, store))
        token = app.post_json("/wx/login", {"code": fake_wechat.issue_code()}).json["3rd_session"]
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert_503_json(app.get("/api/me", headers={"3rd-session": token}, expect_errors=True))
            elapsed = time.monotonic() - started
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        print(f"\nRedis hung: 503 after {elapsed * 1000:.0f} ms")
        assert elapsed < 5
        assert app.get("/api/me", headers={"3rd-session": token}).status_int == 200
        store.close()


def test_async_store_killed_then_recovers_in_the_same_loop(
    fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    asgi = pytest.importorskip("wxmiddleware.asgi")
    httpx = pytest.importorskip("httpx")
    calls: List[str] = []

    async def inner(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with private_redis(tmp_path) as server:

        async def main() -> None:
            store = AsyncRedisStore.from_url(server.url())
            app = asgi.WxASGIMiddleware(inner, config=make_config(fake_wechat), store=store)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

                async def login() -> httpx.Response:
                    return await client.post("/wx/login", json={"code": fake_wechat.issue_code()})

                headers = {"3rd-session": (await login()).json()["3rd_session"]}
                assert (await client.get("/api/me", headers=headers)).status_code == 200
                server.kill()
                for request in (lambda: client.get("/api/me", headers=headers), login):
                    started = time.monotonic()
                    response = await request()
                    assert time.monotonic() - started < 5
                    assert response.status_code == 503
                    assert response.json()["error"] == "store_unavailable"
                with pytest.raises(StoreUnavailable):
                    await store.get(new_token(), IDLE, SCOPE)
                assert calls == ["/api/me"]

                server.start()
                fresh = {"3rd-session": (await login()).json()["3rd_session"]}
                assert (await client.get("/api/me", headers=fresh)).status_code == 200
            await store.aclose()

        asyncio.run(main())


# --- TLS ---


def test_rediss_url(fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    ca, cert, key = write_tls_files(tmp_path)
    server = RedisServer(tmp_path)
    # The last --port wins: plain TCP off, TLS on the free port.
    server.extra = ("--port", "0", "--tls-port", str(server.port), "--tls-auth-clients", "no")
    server.extra += ("--tls-cert-file", str(cert), "--tls-key-file", str(key))
    server.extra += ("--tls-ca-cert-file", str(ca))
    server.client_options = {"ssl": True, "ssl_ca_certs": str(ca)}
    url = f"rediss://127.0.0.1:{server.port}/0"
    try:
        server.start()
        store = RedisStore.from_url(url, ssl_ca_certs=str(ca))
        app = TestApp(wsgi_app(fake_wechat, store))
        token = app.post_json("/wx/login", {"code": fake_wechat.issue_code()}).json["3rd_session"]
        assert app.get("/api/me", headers={"3rd-session": token}).status_int == 200

        async def main() -> Optional[WxSession]:
            async_store = AsyncRedisStore.from_url(url, ssl_ca_certs=str(ca))
            try:
                return await async_store.get(token, IDLE, app_scope(fake_wechat))
            finally:
                await async_store.aclose()

        assert asyncio.run(main()) is not None
        store.close()

        # A server whose certificate does not verify is unavailable, never trusted.
        untrusting = RedisStore.from_url(url)
        with pytest.raises(StoreUnavailable) as excinfo:
            untrusting.get(token, IDLE, SCOPE)
        assert "ConnectionError" in (excinfo.value.detail or "")
        untrusting.close()
    finally:
        server.stop()


# --- Sentinel ---


def test_sentinel_master_for_client(fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    with private_redis(tmp_path) as master, private_sentinel(tmp_path, master, "wx") as sentinel:
        nodes = [("127.0.0.1", sentinel.port)]
        client = redis.sentinel.Sentinel(nodes, sentinel_kwargs=options).master_for("wx", **options)
        store = RedisStore(client)
        app = TestApp(wsgi_app(fake_wechat, store))
        token = app.post_json("/wx/login", {"code": fake_wechat.issue_code()}).json["3rd_session"]
        assert app.get("/api/me", headers={"3rd-session": token}).status_int == 200
        assert master.client().exists(session_key_name("wx:", token))

        async def main() -> Optional[WxSession]:
            from redis.asyncio.sentinel import Sentinel as AsyncSentinel

            async_client = AsyncSentinel(nodes, sentinel_kwargs=options).master_for("wx", **options)
            found = await AsyncRedisStore(async_client).get(token, IDLE, app_scope(fake_wechat))
            await async_client.aclose()
            return found

        found = asyncio.run(main())
        assert found is not None and found.openid == fake_wechat.openid_for("alice")
        client.close()
