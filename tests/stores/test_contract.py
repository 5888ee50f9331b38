"""The SessionStore contract, run against every synchronous store.

Time is a fake clock (``time.time`` patched), so expiry is tested without sleeping.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from wxmiddleware.session import WxSession, code_key, new_token, seal_token, short_hash, token_key
from wxmiddleware.stores import PENDING, MemoryStore, SessionInfo, SessionStore, SQLiteStore

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
