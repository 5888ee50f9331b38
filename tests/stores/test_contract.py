"""The store contract, written once and run against every store, sync and async.

Memory and SQLite stores run on a fake clock (``time.time`` patched), so expiry is tested
without sleeping; Redis keeps time itself, so its stores run the same tests with short TTLs
and real sleeps (each test names both sets of figures). Asynchronous stores are driven
through :class:`tests.stores.support.Blocking`. Where a Redis store can also show what it
wrote (``backend.redis``), the test checks that too.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Iterator, List, NamedTuple, Optional

import pytest

from tests.stores.support import IDLE, SCOPE, Blocking, make_session
from wxmiddleware._sealing import Sealer
from wxmiddleware.session import (
    ClaimState,
    SessionScope,
    code_key,
    new_token,
    seal_token,
    short_hash,
    token_key,
)
from wxmiddleware.stores import (
    AsyncSessionStore,
    MemoryStore,
    SessionInfo,
    SessionStore,
    SQLiteStore,
)
from wxmiddleware.stores.aio import AsyncMemoryStore, AsyncSQLiteStore
from wxmiddleware.stores.base import PURGE_BATCH

STORES = ["memory", "sqlite", "redis", "async-memory", "async-sqlite", "async-redis"]
#: The SQL stores (tests/sql_support.py): on the fake clock, since they take time from Python.
SQL_STORES = ["postgresql", "mysql", "async-postgresql", "async-mysql"]
STORES += SQL_STORES


class RedisView:
    """The shared Redis database and the key prefix of the store under test."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def pttl(self, kind: str, name: str) -> int:
        return int(self.client.pttl(f"{self.prefix}{kind}:{name}"))

    def session_pttl(self, token: str) -> int:
        return self.pttl("s", self.member(token))

    def member(self, token: str) -> str:
        """The name of ``token``'s session in keys and index entries."""
        from wxmiddleware.stores._redis_layout import token_id

        return token_id(token_key(token))

    def index(self, openid: str) -> str:
        from wxmiddleware.stores._redis_layout import Keys

        return Keys(self.prefix).index(openid)


class Backend(NamedTuple):
    store: Any  # a SessionStore, or an AsyncSessionStore behind Blocking
    protocol: type
    advance: Any  # advance(seconds): the fake clock moves, or the test sleeps
    redis: Optional[RedisView]
    ordered: bool  # sessions_for lists the oldest first


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _redis_backend(request: pytest.FixtureRequest, kind: str) -> Iterator[Backend]:
    from tests.redis_support import SHARED_URL, delete_prefixed, shared_client, unique_prefix
    from wxmiddleware.stores.redis import AsyncRedisStore, RedisStore

    client = shared_client()
    prefix = unique_prefix()
    opened: Any
    if kind == "redis":
        opened = RedisStore.from_url(SHARED_URL, key_prefix=prefix)
    else:
        opened = Blocking(AsyncRedisStore.from_url(SHARED_URL, key_prefix=prefix))
    protocol = SessionStore if kind == "redis" else AsyncSessionStore
    try:
        yield Backend(opened, protocol, time.sleep, RedisView(client, prefix), True)
    finally:
        opened.close()
        delete_prefixed(client, prefix)
        client.close()


#: The stores whose time a test can move (Redis keeps its own; see test_redis.py).
CLOCKED_STORES = [kind for kind in STORES if not kind.endswith("redis")]


@pytest.fixture(params=STORES)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    yield from _open_backend(request, tmp_path, monkeypatch)


@pytest.fixture(params=CLOCKED_STORES)
def clocked_backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    yield from _open_backend(request, tmp_path, monkeypatch)


def _open_backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    kind: str = request.param
    if kind.endswith("redis"):
        yield from _redis_backend(request, kind)
        return
    clock = Clock(time.time())
    monkeypatch.setattr(time, "time", clock)
    protocol = AsyncSessionStore if kind.startswith("async") else SessionStore
    if kind in SQL_STORES:
        from tests.sql_support import sql_store

        with sql_store(kind) as opened:
            yield Backend(opened, protocol, clock.advance, None, ordered=True)
        return
    path = tmp_path / "s.sqlite3"
    opened: Any = {
        "memory": lambda: MemoryStore(),
        "sqlite": lambda: SQLiteStore(path),
        "async-memory": lambda: Blocking(AsyncMemoryStore()),
        "async-sqlite": lambda: Blocking(AsyncSQLiteStore(path)),
    }[kind]()
    try:
        yield Backend(opened, protocol, clock.advance, None, ordered=kind.endswith("sqlite"))
    finally:
        opened.close()


#: The stores that seal session_keys at rest (a memory store holds them in clear).
SEALING_STORES = [kind for kind in STORES if not kind.endswith("memory")]


@pytest.fixture(params=SEALING_STORES)
def sealing_backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    yield from _open_backend(request, tmp_path, monkeypatch)


@pytest.fixture
def store(backend: Backend) -> Any:
    return backend.store


def test_store_satisfies_protocol(backend: Backend) -> None:
    inner = backend.store.store if isinstance(backend.store, Blocking) else backend.store
    assert isinstance(inner, backend.protocol)


def test_save_get_round_trip(store: Any) -> None:
    token = new_token()
    session = make_session(unionid="u-1")
    store.save(token, session, IDLE, SCOPE)
    assert store.get(token, IDLE, SCOPE) == session


def test_unknown_token_is_none(store: Any) -> None:
    store.save(new_token(), make_session(), IDLE, SCOPE)
    assert store.get(new_token(), IDLE, SCOPE) is None


def test_sessions_lifecycle(store: Any) -> None:
    token, other = new_token(), new_token()
    session = make_session(unionid="u-1")
    store.save(token, session, IDLE, SCOPE)
    # A second login that brought the same key (WeChat does not renew it every time).
    store.save(other, make_session(session_key=session.session_key), IDLE, SCOPE)
    store.save(new_token(), make_session("o-bob"), IDLE, SCOPE)
    assert store.get(token, IDLE, SCOPE) == session
    assert store.get(new_token(), IDLE, SCOPE) is None
    infos = store.sessions_for("o-alice")
    assert sorted(info.key_hash for info in infos) == sorted(
        short_hash(token_key(t)) for t in (token, other)
    )
    assert store.delete(token) is True
    assert store.delete(token) is False
    assert store.get(token, IDLE, SCOPE) is None
    assert store.revoke_all("o-alice", SCOPE) == 1
    assert store.get(other, IDLE, SCOPE) is None
    assert len(store.sessions_for("o-bob")) == 1


def test_idle_timeout_slides_then_expires(backend: Backend) -> None:
    store = backend.store
    # (idle_ttl, uses after it): 90 s (0.6 s) after the last use is within the idle timeout,
    # 140 s (1.2 s) after the login is not.
    idle, first, second, last = (1, 0.6, 0.6, 1.2) if backend.redis else (100, 50, 90, 101)
    token = new_token()
    store.save(token, make_session(), idle, SCOPE)
    backend.advance(first)
    assert store.get(token, idle, SCOPE) is not None  # slides the idle timeout
    backend.advance(second)
    assert store.get(token, idle, SCOPE) is not None
    backend.advance(last)
    assert store.get(token, idle, SCOPE) is None
    if backend.redis:
        assert backend.redis.session_pttl(token) == -2  # Redis itself dropped the key


def test_idle_deadline_slides_with_granularity(clocked_backend: Backend) -> None:
    # Redis's GETEX slides on every read, at no extra cost (test_redis.py).
    backend = clocked_backend
    store = backend.store
    token = new_token()
    store.save(token, make_session(), IDLE, SCOPE)
    saved = time.time()

    def idle_until() -> float:
        idle_until: float = store.sessions_for("o-alice")[0].idle_until
        return idle_until

    backend.advance(30)  # within min(60, 7200 / 10): no write
    assert store.get(token, IDLE, SCOPE) is not None
    assert idle_until() == saved + IDLE
    backend.advance(31)
    assert store.get(token, IDLE, SCOPE) is not None
    assert idle_until() == time.time() + IDLE
    backend.advance(0.5)  # granularity min(60, 10 / 10) = 1 s for a short idle_ttl
    store.get(token, 10, SCOPE)
    assert idle_until() == time.time() + IDLE - 0.5


def test_absolute_expiry(backend: Backend) -> None:
    store, redis = backend.store, backend.redis
    max_age, live, over = (1.5, 0.5, 1.1) if redis else (30, 20, 11)
    token = new_token()
    store.save(token, make_session(max_age=max_age), IDLE, SCOPE)
    if redis:
        assert 0 < redis.session_pttl(token) <= 1500  # capped at the expiry
    backend.advance(live)
    assert store.get(token, IDLE, SCOPE) is not None
    if redis:
        # GETEX set the TTL to IDLE; the cap brought it back to the absolute expiry.
        assert 0 < redis.session_pttl(token) <= 1000
    backend.advance(over)
    assert store.get(token, IDLE, SCOPE) is None
    if redis:
        assert redis.session_pttl(token) == -2


def test_session_already_past_its_expiry_is_none(store: Any) -> None:
    token = new_token()
    store.save(token, make_session(max_age=-1), IDLE, SCOPE)
    assert store.get(token, IDLE, SCOPE) is None


def test_several_sessions_per_openid(backend: Backend) -> None:
    store = backend.store
    tokens = [new_token() for _ in range(3)]
    sessions = []
    for token in tokens:
        session = make_session()
        sessions.append(session)
        store.save(token, session, IDLE, SCOPE)
        backend.advance(0.01 if backend.redis else 1)
    store.save(new_token(), make_session(openid="o-bob"), IDLE, SCOPE)

    # Every token of the user resolves to the key of the newest login.
    newest = sessions[-1].session_key
    for token, session in zip(tokens, sessions):
        assert store.get(token, IDLE, SCOPE) == dataclasses.replace(session, session_key=newest)
    infos = store.sessions_for("o-alice")
    hashes = [short_hash(token_key(token)) for token in tokens]
    assert sorted(info.key_hash for info in infos) == sorted(hashes)
    if backend.ordered:
        assert [info.key_hash for info in infos] == hashes  # oldest first
    assert {info.openid for info in infos} == {"o-alice"}
    assert len(store.sessions_for("o-bob")) == 1
    assert store.sessions_for("o-nobody") == []


def test_sessions_for_never_exposes_token_or_session_key(backend: Backend) -> None:
    store = backend.store
    token = new_token()
    session = make_session(session_key="sk-secret-value", unionid="u-1")
    store.save(token, session, IDLE, SCOPE)
    [info] = store.sessions_for("o-alice")
    assert isinstance(info, SessionInfo)
    assert [f.name for f in dataclasses.fields(SessionInfo)] == [
        "key_hash",
        "openid",
        "unionid",
        "created_at",
        "expires_at",
        "idle_until",
        "appid",
    ]
    assert info.appid == SCOPE.appid
    shown = repr(info) + repr(dataclasses.asdict(info))
    assert token not in shown
    assert token_key(token) not in shown
    assert "sk-secret-value" not in shown
    assert info.unionid == "u-1"
    assert info.created_at == session.created_at
    assert info.expires_at == session.expires_at
    assert time.time() < info.idle_until <= time.time() + IDLE
    if not backend.redis:
        assert session.created_at < info.idle_until <= session.created_at + IDLE


def test_sessions_for_skips_expired(backend: Backend) -> None:
    store = backend.store
    idle, later = (1, 1.1) if backend.redis else (10, 11)
    store.save(new_token(), make_session(), idle, SCOPE)
    live = new_token()
    store.save(live, make_session(), IDLE, SCOPE)
    backend.advance(later)
    assert [info.key_hash for info in store.sessions_for("o-alice")] == [
        short_hash(token_key(live))
    ]


def test_delete(backend: Backend) -> None:
    store = backend.store
    token, other = new_token(), new_token()
    store.save(token, make_session(), IDLE, SCOPE)
    store.save(other, make_session(), IDLE, SCOPE)
    assert store.delete(token) is True
    assert store.get(token, IDLE, SCOPE) is None
    assert store.delete(token) is False
    assert store.delete(new_token()) is False
    assert store.get(other, IDLE, SCOPE) is not None
    if backend.redis:
        # The index keeps only the session that is left.
        index = backend.redis.index("o-alice")
        members = [m.decode() for m in backend.redis.client.zrange(index, 0, -1)]
        assert members == [backend.redis.member(other)]


def test_revoke_all_ends_only_that_openid(backend: Backend) -> None:
    store = backend.store
    alice: List[str] = [new_token() for _ in range(3)]
    for token in alice:
        store.save(token, make_session(), IDLE, SCOPE)
    bob = new_token()
    store.save(bob, make_session(openid="o-bob"), IDLE, SCOPE)

    assert store.revoke_all("o-alice", SCOPE) == 3
    assert all(store.get(token, IDLE, SCOPE) is None for token in alice)
    assert store.sessions_for("o-alice") == []
    if backend.redis:
        assert not backend.redis.client.exists(backend.redis.index("o-alice"))
    assert store.get(bob, IDLE, SCOPE) is not None
    assert store.revoke_all("o-alice", SCOPE) == 0
    assert store.revoke_all("o-nobody", SCOPE) == 0


def test_revoke_all_ends_only_its_apps_sessions_of_an_openid_two_apps_share(
    backend: Backend,
) -> None:
    store = backend.store
    other_app = dataclasses.replace(SCOPE, appid="wx-other-app")
    mine = [new_token() for _ in range(2)]
    for token in mine:
        store.save(token, make_session(session_key="k-mine"), IDLE, SCOPE)
    theirs = [new_token() for _ in range(2)]
    for token in theirs:
        store.save(token, make_session(session_key="k-theirs"), IDLE, other_app)

    assert store.revoke_all("o-alice", other_app) == 2
    assert all(store.get(token, IDLE, other_app) is None for token in theirs)
    assert [store.get(token, IDLE, SCOPE).session_key for token in mine] == ["k-mine"] * 2
    assert {info.appid for info in store.sessions_for("o-alice")} == {SCOPE.appid}
    if backend.redis:
        # The shared index keeps the entries of the sessions that stay, and only those.
        index = backend.redis.index("o-alice")
        members = {m.decode() for m in backend.redis.client.zrange(index, 0, -1)}
        assert members == {backend.redis.member(token) for token in mine}
    assert store.revoke_all("o-alice", other_app) == 0
    # The other app's logins go on for the user, and a revocation in this app ends only this
    # app's sessions.
    again = new_token()
    store.save(again, make_session(session_key="k-theirs-2"), IDLE, other_app)
    assert store.revoke_all("o-alice", SCOPE) == 2
    assert all(store.get(token, IDLE, SCOPE) is None for token in mine)
    assert store.get(again, IDLE, other_app).session_key == "k-theirs-2"


def test_claim_code_pending_then_sealed(store: Any) -> None:
    code = "code-1"
    key = code_key(code)
    assert store.claim_code(key, 300).state is ClaimState.OWNER
    assert store.claim_code(key, 300).state is ClaimState.PENDING
    assert store.claim_code(key, 300).state is ClaimState.PENDING

    token = new_token()
    sealed = seal_token(code, token)
    store.save(token, make_session(), IDLE, SCOPE, code_key=key, sealed_token=sealed)
    claim = store.claim_code(key, 300)
    assert (claim.state, claim.sealed_token) == (ClaimState.USED, sealed)
    assert store.claim_code(code_key("code-2"), 300).state is ClaimState.OWNER


def test_claims_name_no_token_outside_a_used_claim(store: Any) -> None:
    key = code_key("code-1")
    owner, pending = store.claim_code(key, 300), store.claim_code(key, 300)
    assert (owner.sealed_token, pending.sealed_token) == (None, None)


def test_release_code(store: Any) -> None:
    key = code_key("code-1")
    assert store.claim_code(key, 300).state is ClaimState.OWNER
    store.release_code(key)
    assert store.claim_code(key, 300).state is ClaimState.OWNER
    assert store.claim_code(key, 300).state is ClaimState.PENDING
    store.release_code(code_key("never-claimed"))


def test_release_code_keeps_a_completed_record(store: Any) -> None:
    code = "code-1"
    key = code_key(code)
    assert store.claim_code(key, 300).state is ClaimState.OWNER
    token = new_token()
    sealed = seal_token(code, token)
    store.save(token, make_session(), IDLE, SCOPE, code_key=key, sealed_token=sealed)
    store.release_code(key)
    claim = store.claim_code(key, 300)
    assert (claim.state, claim.sealed_token) == (ClaimState.USED, sealed)


def test_expired_claim_can_be_claimed_afresh(backend: Backend) -> None:
    store = backend.store
    ttl, later = (1, 1.1) if backend.redis else (10, 11)
    key = code_key("code-1")
    assert store.claim_code(key, ttl).state is ClaimState.OWNER
    backend.advance(later)
    assert store.claim_code(key, ttl).state is ClaimState.OWNER
    assert store.claim_code(key, ttl).state is ClaimState.PENDING


def test_purge_expired(clocked_backend: Backend) -> None:
    backend = clocked_backend
    store = backend.store
    short, absolute, live = new_token(), new_token(), new_token()
    store.save(short, make_session(), 10, SCOPE)
    store.save(absolute, make_session(max_age=15), IDLE, SCOPE)
    store.save(live, make_session(), IDLE, SCOPE)
    assert store.claim_code(code_key("old"), 5).state is ClaimState.OWNER
    backend.advance(20)

    assert store.purge_expired() == 2
    assert store.get(live, IDLE, SCOPE) is not None
    assert store.delete(short) is False
    assert store.delete(absolute) is False
    assert store.claim_code(code_key("old"), 5).state is ClaimState.OWNER
    assert store.purge_expired() == 0


def test_purge_expired_counts_sessions_past_their_expiry(clocked_backend: Backend) -> None:
    backend = clocked_backend
    store = backend.store
    token = new_token()
    store.save(token, make_session(max_age=-1), IDLE, SCOPE)
    store.save(new_token(), make_session(), IDLE, SCOPE)
    assert store.purge_expired() == 1
    assert store.get(token, IDLE, SCOPE) is None


def test_revoke_session_by_key_hash(backend: Backend) -> None:
    store = backend.store
    first, second = new_token(), new_token()
    store.save(first, make_session(), IDLE, SCOPE)
    store.save(second, make_session(), IDLE, SCOPE)
    bob = new_token()
    store.save(bob, make_session(openid="o-bob"), IDLE, SCOPE)
    named = short_hash(token_key(first))
    assert named in {info.key_hash for info in store.sessions_for("o-alice")}

    assert store.revoke_session("o-bob", named) is False  # another user's session
    assert store.revoke_session("o-alice", short_hash(token_key(bob))) is False
    assert store.revoke_session("o-alice", "") is False
    assert store.revoke_session("o-alice", named) is True
    assert store.get(first, IDLE, SCOPE) is None
    assert store.get(second, IDLE, SCOPE) is not None
    assert store.get(bob, IDLE, SCOPE) is not None
    assert [info.key_hash for info in store.sessions_for("o-alice")] == [
        short_hash(token_key(second))
    ]
    if backend.redis:
        index = backend.redis.index("o-alice")
        assert backend.redis.client.zrange(index, 0, -1) == [backend.redis.member(second).encode()]
    assert store.revoke_session("o-alice", named) is False


def test_purge_expired_reports_progress_per_batch(clocked_backend: Backend) -> None:
    backend = clocked_backend
    store = backend.store
    expired = 2 * PURGE_BATCH + 500
    for index in range(expired):
        store.save(new_token(), make_session(openid=f"o-{index}"), 10, SCOPE)
    live = new_token()
    store.save(live, make_session(), IDLE, SCOPE)
    backend.advance(11)

    reported: List[int] = []
    assert store.purge_expired(reported.append) == expired
    assert len(reported) >= 3  # one report per batch of about PURGE_BATCH
    assert reported == sorted(reported)
    assert reported[-1] == expired
    assert store.get(live, IDLE, SCOPE) is not None
    assert store.purge_expired(reported.append) == 0


def test_shared_values(backend: Backend) -> None:
    store = backend.store
    assert store.get_value("access_token:wx1") is None
    store.set_value("access_token:wx1", "first", 100)
    if backend.redis:
        assert 99_000 < backend.redis.pttl("v", "access_token:wx1") <= 100_000
    store.set_value("access_token:wx2", "other", 100)
    assert store.get_value("access_token:wx1") == "first"
    store.set_value("access_token:wx1", "second", 100)
    assert store.get_value("access_token:wx1") == "second"
    assert store.delete_value("access_token:wx1") is True
    assert store.get_value("access_token:wx1") is None
    assert store.delete_value("access_token:wx1") is False
    assert store.get_value("access_token:wx2") == "other"


def test_shared_value_expires(backend: Backend) -> None:
    store = backend.store
    ttl, before, after = (0.2, 0.1, 0.2) if backend.redis else (10, 9, 2)
    store.set_value("v", "x" * 512, ttl)
    backend.advance(before)
    assert store.get_value("v") == "x" * 512
    backend.advance(after)
    assert store.get_value("v") is None
    assert store.delete_value("v") is False
    store.purge_expired()
    store.set_value("v", "again", 10)
    assert store.get_value("v") == "again"


def test_lock_has_one_owner(backend: Backend) -> None:
    store = backend.store
    owner = store.acquire_lock("refresh", 30)
    assert owner
    if backend.redis:
        assert backend.redis.client.get(f"{backend.redis.prefix}l:refresh") == owner.encode()
    assert store.acquire_lock("refresh", 30) is None
    assert store.acquire_lock("other", 30) is not None  # locks are independent
    assert store.release_lock("refresh", "not-the-owner") is False
    assert store.acquire_lock("refresh", 30) is None
    assert store.release_lock("refresh", owner) is True
    assert store.release_lock("refresh", owner) is False
    again = store.acquire_lock("refresh", 30)
    assert again and again != owner


def test_lock_expires(backend: Backend) -> None:
    store = backend.store
    ttl, held, gone = (0.2, 0.1, 0.2) if backend.redis else (5, 4, 2)
    owner = store.acquire_lock("refresh", ttl)
    assert owner is not None
    backend.advance(held)
    assert store.acquire_lock("refresh", ttl) is None
    backend.advance(gone)  # the holder died without releasing: the lock frees itself
    successor = store.acquire_lock("refresh", ttl)
    assert successor is not None
    assert store.release_lock("refresh", owner) is False  # too late: it is not its lock
    assert store.acquire_lock("refresh", ttl) is None
    assert store.release_lock("refresh", successor) is True


def test_lock_past_its_ttl_is_not_released_by_its_old_owner(backend: Backend) -> None:
    store = backend.store
    ttl, later = (0.2, 0.3) if backend.redis else (5, 6)
    owner = store.acquire_lock("refresh", ttl)
    assert owner is not None
    backend.advance(later)
    assert store.release_lock("refresh", owner) is False
    assert store.acquire_lock("refresh", ttl) is not None


# --- one current session_key per user (issue 14), sessions bound to their app (issue 17) ---


def _pause(backend: Backend) -> None:
    backend.advance(0.01 if backend.redis else 1)


def test_a_login_puts_its_key_into_every_session_of_the_user(backend: Backend) -> None:
    store = backend.store
    phone, bob = new_token(), new_token()
    store.save(phone, make_session(session_key="k-phone"), IDLE, SCOPE)
    store.save(bob, make_session("o-bob", session_key="k-bob"), IDLE, SCOPE)
    _pause(backend)
    pc = new_token()
    store.save(pc, make_session(session_key="k-pc"), IDLE, SCOPE)
    assert store.get(phone, IDLE, SCOPE).session_key == "k-pc"
    assert store.get(pc, IDLE, SCOPE).session_key == "k-pc"
    assert store.get(bob, IDLE, SCOPE).session_key == "k-bob"


def test_set_session_key_reaches_every_live_session_of_the_user(backend: Backend) -> None:
    store = backend.store
    tokens = [new_token() for _ in range(3)]
    for token in tokens:
        store.save(token, make_session(session_key="k-login"), IDLE, SCOPE)
    bob = new_token()
    store.save(bob, make_session("o-bob", session_key="k-bob"), IDLE, SCOPE)
    store.delete(tokens[0])
    assert store.set_session_key("o-alice", "k-reset", time.time() + 1, SCOPE) == 2
    assert [store.get(token, IDLE, SCOPE) for token in tokens[:1]] == [None]
    assert {store.get(token, IDLE, SCOPE).session_key for token in tokens[1:]} == {"k-reset"}
    assert store.get(bob, IDLE, SCOPE).session_key == "k-bob"
    assert store.set_session_key("o-nobody", "k", time.time(), SCOPE) == 0


def test_an_older_key_never_replaces_a_newer_one(store: Any) -> None:
    token = new_token()
    session = make_session(session_key="k-current")
    store.save(token, session, IDLE, SCOPE)
    # A reset that reaches the store after a later login (their WeChat answers crossed).
    assert store.set_session_key("o-alice", "k-stale", session.created_at - 5, SCOPE) == 1
    assert store.get(token, IDLE, SCOPE).session_key == "k-current"
    store.set_session_key("o-alice", "k-newer", session.created_at + 5, SCOPE)
    assert store.get(token, IDLE, SCOPE).session_key == "k-newer"


def test_the_cap_ends_the_oldest_sessions_of_the_user(backend: Backend) -> None:
    store = backend.store
    capped = dataclasses.replace(SCOPE, max_sessions=2)
    tokens = []
    for _ in range(4):
        tokens.append(new_token())
        store.save(tokens[-1], make_session(), IDLE, capped)
        store.save(new_token(), make_session("o-bob"), IDLE, capped)
        _pause(backend)
    assert [store.get(token, IDLE, capped) is not None for token in tokens] == [
        False,
        False,
        True,
        True,
    ]
    assert len(store.sessions_for("o-alice")) == 2
    assert len(store.sessions_for("o-bob")) == 2


def test_a_session_is_found_only_by_its_own_app(backend: Backend) -> None:
    store = backend.store
    token = new_token()
    store.save(token, make_session(session_key="k-a"), IDLE, SCOPE)
    same_keys = dataclasses.replace(SCOPE, appid="wx-other-app")
    other_secret = SessionScope(SCOPE.appid, Sealer(["another-apps-store-key"]))
    assert store.get(token, IDLE, same_keys) is None
    if backend.ordered:  # the persistent stores (SQLite, Redis) seal: other keys open nothing
        assert store.get(token, IDLE, other_secret) is None
    # The other app's logins and resets of the same openid leave this app's sessions alone.
    store.save(new_token(), make_session(session_key="k-b"), IDLE, same_keys)
    assert store.set_session_key("o-alice", "k-b2", time.time() + 1, same_keys) == 1
    found = store.get(token, IDLE, SCOPE)
    assert found is not None and found.session_key == "k-a" and found.appid == SCOPE.appid


# --- store keys: rotation (issue 14) ---

OLD_STORE_KEY = "old-store-key-0123456789"
NEW_STORE_KEY = "new-store-key-9876543210"


def keyed_scope(*store_keys: str) -> SessionScope:
    """SCOPE's app, its session_keys sealed under ``store_keys`` (the first seals)."""
    return dataclasses.replace(SCOPE, sealer=Sealer(store_keys))


def test_a_rotated_store_key_opens_old_sessions_until_it_is_dropped(
    sealing_backend: Backend,
) -> None:
    backend = sealing_backend
    store = backend.store
    before = keyed_scope(OLD_STORE_KEY)
    rotated = keyed_scope(NEW_STORE_KEY, OLD_STORE_KEY)
    after = keyed_scope(NEW_STORE_KEY)
    phone, bob = new_token(), new_token()
    store.save(phone, make_session(session_key="k-phone"), IDLE, before)
    store.save(bob, make_session("o-bob", session_key="k-bob"), IDLE, before)
    # The new key first, the old one second: sessions sealed under the old one still open.
    assert store.get(phone, IDLE, rotated).session_key == "k-phone"
    assert store.get(bob, IDLE, rotated).session_key == "k-bob"
    # A login under the new key seals the user's current key under it in every session.
    _pause(backend)
    pc = new_token()
    store.save(pc, make_session(session_key="k-pc"), IDLE, rotated)
    # The old key dropped: what only it sealed is absent (None, not an error), the rest opens.
    assert store.get(bob, IDLE, after) is None
    assert [store.get(token, IDLE, after).session_key for token in (phone, pc)] == ["k-pc"] * 2
    assert store.get(pc, IDLE, before) is None  # the old key alone opens nothing new
