"""One current session_key per user (issue 14) and sessions bound to their app (issue 17),
through both adapters and every kind of store: memory, SQLite and Redis.

The fake WeChat issues a new session_key on every login and reset, as WeChat may.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from wxmiddleware import AsyncWxApi, WxApi
from wxmiddleware.crypto import decrypt_data
from wxmiddleware.errors import InvalidSession
from wxmiddleware.session import WxSession, sign_with_session_key
from wxmiddleware.testing import FakeWeChat

from .drivers import Driver, app_config, assert_error
from .stubs import WSGI, memory_store, sqlite_store

STORES = ["memory", "sqlite", "redis"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, adapter: str, tmp_path: Path) -> Iterator[Any]:
    """A store of the adapter's kind; the driver that uses it closes it."""
    if request.param == "memory":
        yield memory_store(adapter)
    elif request.param == "sqlite":
        yield sqlite_store(adapter, tmp_path / "sessions.sqlite3")
    else:
        from tests.redis_support import SHARED_URL, delete_prefixed, shared_client, unique_prefix
        from wxmiddleware.stores.redis import AsyncRedisStore, RedisStore

        client = shared_client()
        prefix = unique_prefix()
        kind = RedisStore if adapter == WSGI else AsyncRedisStore
        yield kind.from_url(SHARED_URL, key_prefix=prefix)
        delete_prefixed(client, prefix)
        client.close()


def encrypt_for(session_key: str, payload: dict[str, Any]) -> tuple[str, str]:
    """What the mini-program sends: ``payload`` as ``encryptedData`` under ``session_key``."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.padding import PKCS7

    iv = os.urandom(16)
    padder = PKCS7(128).padder()
    plain = padder.update(json.dumps(payload).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(base64.b64decode(session_key)), modes.CBC(iv)).encryptor()
    data = encryptor.update(plain) + encryptor.finalize()
    return base64.b64encode(data).decode(), base64.b64encode(iv).decode()


def seen_session(app: Driver, token: str) -> WxSession:
    reply = app.me(token)
    assert reply.status == 200, reply.body
    assert reply.seen is not None and reply.seen.session is not None
    assert reply.seen.session_key == reply.seen.session.session_key
    return reply.seen.session


def reset(app: Driver, adapter: str, session: WxSession) -> WxSession:
    """``reset_session_key`` with the API client of the adapter's kind, on the app's store."""
    config, store = app.middleware.config, app.middleware.store
    if adapter == WSGI:
        api = WxApi(config, store)
        try:
            return api.reset_session_key(session)
        finally:
            api.close()

    async def run() -> WxSession:
        api = AsyncWxApi(config, store)
        try:
            return await api.reset_session_key(session)
        finally:
            await api.aclose()

    reset_session: WxSession = app.portal.call(run)  # type: ignore[attr-defined]
    return reset_session


def test_every_token_of_the_user_resolves_to_the_newest_key(
    make_app: Callable[..., Driver], store: Any, fake_wechat: FakeWeChat
) -> None:
    app = make_app(store=store)
    phone = app.login(fake_wechat, "alice")
    bob = app.login(fake_wechat, "bob")
    bob_key = fake_wechat.session_key_for("bob")
    pc = app.login(fake_wechat, "alice")
    newest = fake_wechat.session_key_for("alice")
    assert newest is not None and newest != seen_session(app, bob).session_key
    for token in (phone, pc):
        assert seen_session(app, token).session_key == newest
    assert seen_session(app, bob).session_key == bob_key

    # What the mini-program encrypted with the newest key decrypts through the first token.
    encrypted, iv = encrypt_for(newest, {"n": 1, "watermark": {"appid": fake_wechat.appid}})
    first = seen_session(app, phone)
    assert decrypt_data(first, encrypted, iv, fake_wechat.appid)["n"] == 1
    app.close_store(store)


def test_reset_session_key_reaches_all_of_the_users_sessions(
    make_app: Callable[..., Driver], adapter: str, store: Any, fake_wechat: FakeWeChat
) -> None:
    app = make_app(store=store)
    tokens = [app.login(fake_wechat, "alice") for _ in range(3)]
    before = seen_session(app, tokens[0])
    after = reset(app, adapter, before)
    reset_key = fake_wechat.session_key_for("alice")
    assert after.session_key == reset_key != before.session_key
    assert after.openid == before.openid and after.expires_at == before.expires_at
    for token in tokens:
        assert seen_session(app, token).session_key == reset_key
    # The old key no longer signs for WeChat: a reset with it is a 401-shaped error.
    with pytest.raises(InvalidSession) as refused:
        reset(app, adapter, before)
    assert refused.value.status == 401 and refused.value.errcode == 87009
    assert before.session_key not in str(refused.value)
    app.close_store(store)


def test_the_cap_ends_the_oldest_session(
    make_app: Callable[..., Driver], store: Any, fake_wechat: FakeWeChat
) -> None:
    app = make_app(store=store, config=app_config(fake_wechat, max_sessions_per_user=2))
    tokens = [app.login(fake_wechat, "alice") for _ in range(3)]
    assert_error(app.me(tokens[0]), 401, "invalid_session")
    for token in tokens[1:]:
        assert app.me(token).status == 200
    app.close_store(store)


def test_a_token_is_valid_for_its_own_app_only(
    make_app: Callable[..., Driver], store: Any, fake_wechat: FakeWeChat
) -> None:
    """Two mini-programs on one store (for Redis: one key prefix): app A's token is refused
    by app B, which never sees A's openid."""
    app_a = make_app(store=store)
    other = app_config(fake_wechat, appid="wx1111111111111111", secret="another-secret-value")
    app_b = make_app(store=store, config=other)
    token = app_a.login(fake_wechat)
    assert app_a.me(token).status == 200
    refused = app_b.me(token)
    assert_error(refused, 401, "invalid_session")
    assert fake_wechat.openid_for("alice") not in refused.text
    app_a.close_store(store)


def test_no_session_key_or_signature_reaches_the_log(
    make_app: Callable[..., Driver],
    adapter: str,
    store: Any,
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app(store=store)
    tokens = [app.login(fake_wechat, "alice") for _ in range(2)]
    session = seen_session(app, tokens[0])
    reset_session = reset(app, adapter, session)
    secrets = [session.session_key, reset_session.session_key, *tokens, fake_wechat.secret]
    secrets.append(sign_with_session_key(session, ""))
    for secret in secrets:
        assert secret not in caplog.text
    app.close_store(store)
