"""Nothing half-written (issue 14): a store that fails part-way through putting a user's new
session_key into the user's sessions leaves each with its old or its new key, and the
failure is a ``StoreUnavailable`` (``503`` through the middleware).

SQLite rewrites the sessions in the login's transaction: a trigger in the database file
fails the second rewrite, and the whole transaction rolls back. Redis rewrites each session
with a one-key script: a proxy between the store and a private ``redis-server`` lets the
first script of the batch through and, once Redis has answered it, kills the server by its
pid (appending every write to its AOF first, so what it acknowledged survives the restart).
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from select import select
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest
from webtest import TestApp

from tests.stores.support import app_scope
from wxmiddleware import SQLiteStore, WxConfig, WxMiddleware
from wxmiddleware.errors import StoreUnavailable
from wxmiddleware.testing import FakeWeChat

IDLE = 7200


class Backend:
    """An app on the store under test, and what the test needs to see its sessions."""

    def __init__(self, fake: FakeWeChat, store: Any) -> None:
        self.fake = fake
        self.seen: List[Dict[str, Any]] = []
        config = WxConfig(appid=fake.appid, secret=fake.secret, api_base=fake.url)
        self.middleware = WxMiddleware(self.inner, config=config, store=store)
        self.app = TestApp(self.middleware)

    def inner(self, environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        self.seen.append(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def login(self, user: str = "alice") -> Any:
        return self.app.post_json(
            "/wx/login", {"code": self.fake.issue_code(user)}, expect_errors=True
        )

    def session_key(self, token: str) -> str:
        reply = self.app.get("/api/me", headers={"3rd-session": token})
        assert reply.status_int == 200
        key: str = self.seen[-1]["wxmiddleware.session_key"]
        return key


def logged_in(backend: Backend, times: int) -> List[str]:
    tokens = [backend.login().json["3rd_session"] for _ in range(times)]
    current = backend.fake.session_key_for("alice")
    assert [backend.session_key(token) for token in tokens] == [current] * times
    return tokens


def assert_store_unavailable(reply: Any) -> None:
    assert reply.status_int == 503, reply.text
    assert reply.json["error"] == "store_unavailable"


# --- SQLite: a trigger fails the second rewrite of a transaction ---

FAIL_SECOND_REKEY = """
CREATE TABLE wxtest_rekeys (n INTEGER NOT NULL);
INSERT INTO wxtest_rekeys VALUES (0);
CREATE TRIGGER wxtest_fail_second_rekey AFTER UPDATE OF value ON wx_sessions
BEGIN
  UPDATE wxtest_rekeys SET n = n + 1;
  SELECT RAISE(ABORT, 'injected failure') WHERE (SELECT n FROM wxtest_rekeys) >= 2;
END;
"""


def test_sqlite_failing_part_way_leaves_every_session_its_old_key(
    fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path)
    backend = Backend(fake_wechat, store)
    tokens = logged_in(backend, 3)
    old = fake_wechat.session_key_for("alice")
    openid = fake_wechat.openid_for("alice")
    scope = app_scope(fake_wechat)
    with closing(sqlite3.connect(path)) as db:
        db.executescript(FAIL_SECOND_REKEY)

    # The fourth login brings a new key; its second rewrite fails and the transaction, the
    # new session with it, rolls back.
    assert_store_unavailable(backend.login())
    assert fake_wechat.session_key_for("alice") != old
    assert [backend.session_key(token) for token in tokens] == [old] * 3
    assert len(store.sessions_for(openid)) == 3
    # A reset's rewrite fails the same way, and changes nothing either.
    with pytest.raises(StoreUnavailable) as raised:
        store.set_session_key(openid, "k-reset", time.time() + 1, scope)
    assert "injected failure" in (raised.value.detail or "")
    assert "k-reset" not in (raised.value.detail or "")
    assert [backend.session_key(token) for token in tokens] == [old] * 3

    # Once the database takes writes again, the next login completes the work.
    with closing(sqlite3.connect(path)) as db:
        db.execute("DROP TRIGGER wxtest_fail_second_rekey")
    newest = backend.login()
    assert newest.status_int == 200
    tokens.append(newest.json["3rd_session"])
    current = fake_wechat.session_key_for("alice")
    assert [backend.session_key(token) for token in tokens] == [current] * 4
    store.close()


# --- Redis: the server killed after the first script of the batch ---


def split_commands(buffer: bytes) -> Tuple[List[Tuple[bytes, List[bytes]]], bytes]:
    """The complete RESP commands at the start of ``buffer`` (each its bytes and its
    arguments), and what is left of it."""
    commands: List[Tuple[bytes, List[bytes]]] = []
    start = 0
    while True:
        parsed = _command_at(buffer, start)
        if parsed is None:
            return commands, buffer[start:]
        end, arguments = parsed
        commands.append((buffer[start:end], arguments))
        start = end


def _command_at(buffer: bytes, at: int) -> Optional[Tuple[int, List[bytes]]]:
    # A client sends each command as an array of bulk strings: *N, then N times $len + data.
    line_end = buffer.find(b"\r\n", at)
    if line_end < 0:
        return None
    assert buffer[at : at + 1] == b"*", buffer[at : at + 20]
    count = int(buffer[at + 1 : line_end])
    position = line_end + 2
    arguments = []
    for _ in range(count):
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        length = int(buffer[position + 1 : line_end])
        data_start = line_end + 2
        if len(buffer) < data_start + length + 2:
            return None
        arguments.append(buffer[data_start : data_start + length])
        position = data_start + length + 2
    return position, arguments


class KillingProxy:
    """A loopback TCP proxy to ``server`` that passes everything through until it is
    armed. Armed, it forwards the first ``allowed`` commands of the first batch that runs
    ``script``, waits for Redis to answer them, kills the server by its pid and closes every
    connection; the rest of the batch never reaches Redis, and a new connection finds no
    server behind the proxy."""

    def __init__(self, server: Any, script: str, allowed: int) -> None:
        self.server = server
        self.script = script.encode()
        self.allowed = allowed
        self.armed = threading.Event()
        self.killed = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port: int = self.listener.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        self.listener.settimeout(0.1)  # to see `killed` soon after it is set
        try:
            while not self.killed.is_set():
                try:
                    client, _ = self.listener.accept()
                except socket.timeout:
                    continue
                client.settimeout(None)
                thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
                self.threads.append(thread)
                thread.start()
        finally:
            self.listener.close()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        except OSError:
            client.close()
            return
        pending = b""
        cutting = False
        sent = 0
        answers = b""
        try:
            while not self.killed.is_set():
                readable, _, _ = select([client, upstream], [], [], 0.1)
                if upstream in readable:
                    data = upstream.recv(65536)
                    if not data:
                        return
                    if not cutting:
                        client.sendall(data)
                        continue
                    # Each script answers an integer, one line: all answered, kill.
                    answers += data
                    if sent == self.allowed and answers.count(b"\r\n") >= sent:
                        self._kill()
                        return
                if client in readable:
                    data = client.recv(65536)
                    if not data:
                        return
                    commands, pending = split_commands(pending + data)
                    for raw, arguments in commands:
                        runs_script = arguments[:2] == [b"EVAL", self.script]
                        if runs_script and self.armed.is_set() and not self.killed.is_set():
                            cutting = True
                        if not cutting:
                            upstream.sendall(raw)
                        elif sent < self.allowed:
                            upstream.sendall(raw)
                            sent += 1
        finally:
            client.close()
            upstream.close()

    def _kill(self) -> None:
        self.killed.set()
        self.server.kill()

    def close(self) -> None:
        self.killed.set()
        for thread in self.threads:
            thread.join(timeout=5)
            assert not thread.is_alive()


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[Any]:
    """A private ``redis-server`` that appends every write to its AOF before it answers,
    so that a restart after a kill has what it acknowledged."""
    from tests.redis_support import RedisServer

    server = RedisServer(tmp_path, "--appendonly", "yes", "--appendfsync", "always")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def keys_after_restart(server: Any, fake: FakeWeChat, tokens: Sequence[str]) -> List[str]:
    """The session_key of each of ``tokens`` once the killed server has restarted."""
    from wxmiddleware.stores.redis import RedisStore

    server.start()
    store = RedisStore.from_url(server.url())
    try:
        found = [store.get(token, IDLE, app_scope(fake)) for token in tokens]
    finally:
        store.close()
    assert all(session is not None for session in found)
    return [session.session_key for session in found if session is not None]


@pytest.mark.redis
def test_redis_killed_part_way_leaves_each_session_its_old_or_new_key(
    fake_wechat: FakeWeChat, durable_redis: Any
) -> None:
    from wxmiddleware.stores._redis_layout import REKEY_SCRIPT
    from wxmiddleware.stores.redis import RedisStore

    proxy = KillingProxy(durable_redis, REKEY_SCRIPT, allowed=1)
    store = RedisStore.from_url(proxy.url())
    try:
        backend = Backend(fake_wechat, store)
        tokens = logged_in(backend, 3)
        old = fake_wechat.session_key_for("alice")

        # The fourth login stores its session, then puts its new key into the three others,
        # one script each: Redis dies after the first.
        proxy.armed.set()
        assert_store_unavailable(backend.login())
        assert proxy.killed.is_set()
        new = fake_wechat.session_key_for("alice")
        assert new != old
        keys = keys_after_restart(durable_redis, fake_wechat, tokens)
        assert set(keys) <= {old, new}  # never a mixture, never an undecodable record
        assert sorted(keys) == sorted([new, old, old])  # the first one rewritten, not the rest
    finally:
        proxy.close()
        store.close()

    # With Redis back, the next login completes the work.
    direct = RedisStore.from_url(durable_redis.url())
    try:
        again = Backend(fake_wechat, direct)
        tokens.append(again.login().json["3rd_session"])
        current = fake_wechat.session_key_for("alice")
        assert [again.session_key(token) for token in tokens] == [current] * 4
    finally:
        direct.close()


@pytest.mark.redis
def test_redis_killed_part_way_through_a_reset(fake_wechat: FakeWeChat, durable_redis: Any) -> None:
    from wxmiddleware.stores._redis_layout import REKEY_SCRIPT
    from wxmiddleware.stores.redis import RedisStore

    proxy = KillingProxy(durable_redis, REKEY_SCRIPT, allowed=2)
    store = RedisStore.from_url(proxy.url())
    try:
        backend = Backend(fake_wechat, store)
        tokens = logged_in(backend, 4)
        old = fake_wechat.session_key_for("alice")
        proxy.armed.set()
        with pytest.raises(StoreUnavailable) as raised:
            store.set_session_key(
                fake_wechat.openid_for("alice"), "k-reset", time.time() + 1, app_scope(fake_wechat)
            )
        assert raised.value.status == 503
        assert "k-reset" not in (raised.value.detail or "")
    finally:
        proxy.close()
        store.close()
    keys = keys_after_restart(durable_redis, fake_wechat, tokens)
    assert sorted(keys) == sorted(["k-reset", "k-reset", old, old])
