"""The SessionStore contract, run against every synchronous store.

Time is a fake clock (``time.time`` patched), so expiry is tested without sleeping.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from wxmiddleware.errors import StoreUnavailable
from wxmiddleware.session import WxSession, code_key, new_token, seal_token, short_hash, token_key
from wxmiddleware.stores import PENDING, MemoryStore, SessionInfo, SessionStore, SQLiteStore
from wxmiddleware.stores.base import PURGE_BATCH

IDLE = 7200


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(time.time())
    monkeypatch.setattr(time, "time", fake)
    return fake


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionStore]:
    opened: SessionStore = (
        MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.sqlite3")
    )
    yield opened
    opened.close()


def make_session(
    clock: Clock, openid: str = "o-alice", max_age: float = 30 * 86400, **extra: str
) -> WxSession:
    return WxSession(
        openid=openid,
        session_key=extra.get("session_key", "sk-" + new_token()),
        unionid=extra.get("unionid"),
        created_at=clock.now,
        expires_at=clock.now + max_age,
    )


def test_store_satisfies_protocol(store: SessionStore) -> None:
    assert isinstance(store, SessionStore)


def test_save_get_round_trip(store: SessionStore, clock: Clock) -> None:
    token = new_token()
    session = make_session(clock, unionid="u-1")
    store.save(token, session, IDLE)
    assert store.get(token, IDLE) == session


def test_unknown_token_is_none(store: SessionStore, clock: Clock) -> None:
    store.save(new_token(), make_session(clock), IDLE)
    assert store.get(new_token(), IDLE) is None


def test_idle_timeout_slides_then_expires(store: SessionStore, clock: Clock) -> None:
    token = new_token()
    store.save(token, make_session(clock), 100)
    clock.advance(50)
    assert store.get(token, 100) is not None
    clock.advance(90)  # 140 s after login, but only 90 s after the last use
    assert store.get(token, 100) is not None
    clock.advance(101)
    assert store.get(token, 100) is None


def test_absolute_expiry(store: SessionStore, clock: Clock) -> None:
    token = new_token()
    store.save(token, make_session(clock, max_age=30), IDLE)
    clock.advance(20)
    assert store.get(token, IDLE) is not None
    clock.advance(11)
    assert store.get(token, IDLE) is None


def test_session_already_past_its_expiry_is_none(store: SessionStore, clock: Clock) -> None:
    token = new_token()
    store.save(token, make_session(clock, max_age=-1), IDLE)
    assert store.get(token, IDLE) is None


def test_several_sessions_per_openid(store: SessionStore, clock: Clock) -> None:
    tokens = [new_token() for _ in range(3)]
    sessions = []
    for token in tokens:
        session = make_session(clock)
        sessions.append(session)
        store.save(token, session, IDLE)
        clock.advance(1)
    store.save(new_token(), make_session(clock, openid="o-bob"), IDLE)

    for token, session in zip(tokens, sessions):
        assert store.get(token, IDLE) == session
    infos = store.sessions_for("o-alice")
    assert sorted(info.key_hash for info in infos) == sorted(
        short_hash(token_key(token)) for token in tokens
    )
    assert {info.openid for info in infos} == {"o-alice"}
    assert len(store.sessions_for("o-bob")) == 1
    assert store.sessions_for("o-nobody") == []


def test_sessions_for_never_exposes_token_or_session_key(store: SessionStore, clock: Clock) -> None:
    token = new_token()
    session = make_session(clock, session_key="sk-secret-value", unionid="u-1")
    store.save(token, session, IDLE)
    [info] = store.sessions_for("o-alice")
    assert [f.name for f in dataclasses.fields(SessionInfo)] == [
        "key_hash",
        "openid",
        "unionid",
        "created_at",
        "expires_at",
        "idle_until",
    ]
    shown = repr(info) + repr(dataclasses.asdict(info))
    assert token not in shown
    assert token_key(token) not in shown
    assert "sk-secret-value" not in shown
    assert info.unionid == "u-1"
    assert info.created_at == session.created_at
    assert info.expires_at == session.expires_at
    assert session.created_at < info.idle_until <= session.created_at + IDLE


def test_sessions_for_skips_expired(store: SessionStore, clock: Clock) -> None:
    store.save(new_token(), make_session(clock), 10)
    live = new_token()
    store.save(live, make_session(clock), IDLE)
    clock.advance(11)
    assert [info.key_hash for info in store.sessions_for("o-alice")] == [
        short_hash(token_key(live))
    ]


def test_delete(store: SessionStore, clock: Clock) -> None:
    token, other = new_token(), new_token()
    store.save(token, make_session(clock), IDLE)
    store.save(other, make_session(clock), IDLE)
    assert store.delete(token) is True
    assert store.get(token, IDLE) is None
    assert store.delete(token) is False
    assert store.delete(new_token()) is False
    assert store.get(other, IDLE) is not None


def test_revoke_all_ends_only_that_openid(store: SessionStore, clock: Clock) -> None:
    alice: List[str] = [new_token() for _ in range(3)]
    for token in alice:
        store.save(token, make_session(clock), IDLE)
    bob = new_token()
    store.save(bob, make_session(clock, openid="o-bob"), IDLE)

    assert store.revoke_all("o-alice") == 3
    assert all(store.get(token, IDLE) is None for token in alice)
    assert store.sessions_for("o-alice") == []
    assert store.get(bob, IDLE) is not None
    assert store.revoke_all("o-alice") == 0
    assert store.revoke_all("o-nobody") == 0


def test_claim_code_pending_then_sealed(store: SessionStore, clock: Clock) -> None:
    code = "code-1"
    key = code_key(code)
    assert store.claim_code(key, 300) is None
    assert store.claim_code(key, 300) == PENDING
    assert store.claim_code(key, 300) == PENDING

    token = new_token()
    sealed = seal_token(code, token)
    store.save(token, make_session(clock), IDLE, code_key=key, sealed_token=sealed)
    assert store.claim_code(key, 300) == sealed
    assert store.claim_code(code_key("code-2"), 300) is None


def test_release_code(store: SessionStore, clock: Clock) -> None:
    key = code_key("code-1")
    assert store.claim_code(key, 300) is None
    store.release_code(key)
    assert store.claim_code(key, 300) is None
    assert store.claim_code(key, 300) == PENDING
    store.release_code(code_key("never-claimed"))


def test_release_code_keeps_a_completed_record(store: SessionStore, clock: Clock) -> None:
    code = "code-1"
    key = code_key(code)
    assert store.claim_code(key, 300) is None
    token = new_token()
    sealed = seal_token(code, token)
    store.save(token, make_session(clock), IDLE, code_key=key, sealed_token=sealed)
    store.release_code(key)
    assert store.claim_code(key, 300) == sealed


def test_expired_claim_can_be_claimed_afresh(store: SessionStore, clock: Clock) -> None:
    key = code_key("code-1")
    assert store.claim_code(key, 10) is None
    clock.advance(11)
    assert store.claim_code(key, 10) is None
    assert store.claim_code(key, 10) == PENDING


def test_purge_expired(store: SessionStore, clock: Clock) -> None:
    short, absolute, live = new_token(), new_token(), new_token()
    store.save(short, make_session(clock), 10)
    store.save(absolute, make_session(clock, max_age=15), IDLE)
    store.save(live, make_session(clock), IDLE)
    assert store.claim_code(code_key("old"), 5) is None
    clock.advance(20)

    assert store.purge_expired() == 2
    assert store.get(live, IDLE) is not None
    assert store.delete(short) is False
    assert store.delete(absolute) is False
    assert store.claim_code(code_key("old"), 5) is None
    assert store.purge_expired() == 0


def test_revoke_session_by_key_hash(store: SessionStore, clock: Clock) -> None:
    first, second = new_token(), new_token()
    store.save(first, make_session(clock), IDLE)
    store.save(second, make_session(clock), IDLE)
    bob = new_token()
    store.save(bob, make_session(clock, openid="o-bob"), IDLE)
    named = short_hash(token_key(first))
    assert named in {info.key_hash for info in store.sessions_for("o-alice")}

    assert store.revoke_session("o-bob", named) is False  # another user's session
    assert store.revoke_session("o-alice", short_hash(token_key(bob))) is False
    assert store.revoke_session("o-alice", "") is False
    assert store.revoke_session("o-alice", named) is True
    assert store.get(first, IDLE) is None
    assert store.get(second, IDLE) is not None
    assert store.get(bob, IDLE) is not None
    assert [info.key_hash for info in store.sessions_for("o-alice")] == [
        short_hash(token_key(second))
    ]
    assert store.revoke_session("o-alice", named) is False


def test_purge_expired_reports_progress_per_batch(store: SessionStore, clock: Clock) -> None:
    expired = 2 * PURGE_BATCH + 500
    for index in range(expired):
        store.save(new_token(), make_session(clock, openid=f"o-{index % 7}"), 10)
    live = new_token()
    store.save(live, make_session(clock), IDLE)
    clock.advance(11)

    reported: List[int] = []
    assert store.purge_expired(reported.append) == expired
    assert len(reported) >= 3  # one report per batch of about PURGE_BATCH
    assert reported == sorted(reported)
    assert reported[-1] == expired
    assert store.get(live, IDLE) is not None
    assert store.purge_expired(reported.append) == 0


def test_shared_values(store: SessionStore, clock: Clock) -> None:
    assert store.get_value("access_token:wx1") is None
    store.set_value("access_token:wx1", "first", 100)
    store.set_value("access_token:wx2", "other", 100)
    assert store.get_value("access_token:wx1") == "first"
    store.set_value("access_token:wx1", "second", 100)
    assert store.get_value("access_token:wx1") == "second"
    assert store.delete_value("access_token:wx1") is True
    assert store.get_value("access_token:wx1") is None
    assert store.delete_value("access_token:wx1") is False
    assert store.get_value("access_token:wx2") == "other"


def test_shared_value_expires(store: SessionStore, clock: Clock) -> None:
    store.set_value("v", "x" * 512, 10)
    clock.advance(9)
    assert store.get_value("v") == "x" * 512
    clock.advance(2)
    assert store.get_value("v") is None
    assert store.delete_value("v") is False
    store.purge_expired()
    store.set_value("v", "again", 10)
    assert store.get_value("v") == "again"


def test_lock_has_one_owner(store: SessionStore, clock: Clock) -> None:
    owner = store.acquire_lock("refresh", 30)
    assert owner
    assert store.acquire_lock("refresh", 30) is None
    assert store.acquire_lock("other", 30) is not None  # locks are independent
    assert store.release_lock("refresh", "not-the-owner") is False
    assert store.acquire_lock("refresh", 30) is None
    assert store.release_lock("refresh", owner) is True
    assert store.release_lock("refresh", owner) is False
    again = store.acquire_lock("refresh", 30)
    assert again and again != owner


def test_lock_expires(store: SessionStore, clock: Clock) -> None:
    owner = store.acquire_lock("refresh", 5)
    assert owner is not None
    clock.advance(4)
    assert store.acquire_lock("refresh", 5) is None
    clock.advance(2)  # the holder died without releasing: the lock frees itself
    successor = store.acquire_lock("refresh", 5)
    assert successor is not None
    assert store.release_lock("refresh", owner) is False  # too late: it is not its lock
    assert store.acquire_lock("refresh", 5) is None
    assert store.release_lock("refresh", successor) is True


def test_lock_past_its_ttl_is_not_released_by_its_old_owner(
    store: SessionStore, clock: Clock
) -> None:
    owner = store.acquire_lock("refresh", 5)
    assert owner is not None
    clock.advance(6)
    assert store.release_lock("refresh", owner) is False
    assert store.acquire_lock("refresh", 5) is not None


# --- locks across processes (SQLite: every process on the machine) ---


def _child_take_lock(path: str, barrier: Any, hold: float, queue: Any) -> None:
    store = SQLiteStore(path)
    barrier.wait()
    owner = store.acquire_lock("refresh", 30)
    queue.put(owner is not None)
    if owner is not None:
        time.sleep(hold)  # the others try while it is held
        store.release_lock("refresh", owner)
    store.close()


def _child_take_lock_and_die(path: str, ttl: float, queue: Any) -> None:
    store = SQLiteStore(path)
    queue.put(store.acquire_lock("refresh", ttl))
    queue.close()
    queue.join_thread()  # the answer is on its way before the process dies
    os._exit(0)  # no release, no cleanup: a crashed worker


def test_sqlite_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(6)
    path = str(tmp_path / "s.sqlite3")  # a fresh file: the processes race to create it too
    processes = [
        ctx.Process(target=_child_take_lock, args=(path, barrier, 1.0, queue)) for _ in range(6)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    assert sorted(queue.get(timeout=5) for _ in processes) == [False] * 5 + [True]
    store = SQLiteStore(path)
    owner = store.acquire_lock("refresh", 30)  # released by its holder
    assert owner is not None
    store.close()


def test_sqlite_lock_of_a_dead_process_expires(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    path = str(tmp_path / "s.sqlite3")
    child = ctx.Process(target=_child_take_lock_and_die, args=(path, 1.0, queue))
    child.start()
    child.join(60)
    assert queue.get(timeout=5) is not None
    store = SQLiteStore(path)
    assert store.acquire_lock("refresh", 30) is None
    deadline = time.monotonic() + 5
    while store.acquire_lock("refresh", 30) is None:
        assert time.monotonic() < deadline, "the dead process's lock never expired"
        time.sleep(0.05)
    store.close()


def test_sqlite_failures_are_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = SQLiteStore(blocker / "s.sqlite3")
    for call in (
        lambda: store.revoke_session("o-alice", "0123456789ab"),
        lambda: store.purge_expired(),
        lambda: store.get_value("v"),
        lambda: store.set_value("v", "x", 60),
        lambda: store.delete_value("v"),
        lambda: store.acquire_lock("l", 60),
        lambda: store.release_lock("l", "owner"),
    ):
        with pytest.raises(StoreUnavailable) as info:
            call()
        assert info.value.status == 503 and str(blocker) in (info.value.detail or "")
