"""reset_session_key, user_encrypt_keys and sign_with_session_key against the fake WeChat."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any, Iterator

import pytest

from wxmiddleware import AsyncWxApi, MemoryStore, WxApi, WxConfig
from wxmiddleware.errors import InvalidSession, RateLimited, StoreUnavailable
from wxmiddleware.session import SessionScope, WxSession, new_token, sign_with_session_key
from wxmiddleware.stores.aio import AsyncMemoryStore
from wxmiddleware.testing import FakeWeChat
from wxmiddleware.wechat import WeChatClient
from wxmiddleware.wechat._api_replies import SESSION_REFUSED_ERRCODES, api_error
from wxmiddleware.wechat._paths import RESET_SESSION_KEY_PATH, USER_ENCRYPT_KEY_PATH


def config_for(fake: FakeWeChat, **fields: Any) -> WxConfig:
    return WxConfig(appid=fake.appid, secret=fake.secret, api_base=fake.url, **fields)


def logged_in(fake: FakeWeChat, store: MemoryStore, config: WxConfig) -> tuple[str, WxSession]:
    """A session as a login through the middleware leaves it (WeChat's current key)."""
    client = WeChatClient(config)
    reply = client.code_to_session(fake.issue_code("alice"))
    client.close()
    now = time.time()
    session = WxSession(reply.openid, reply.session_key, None, now, now + 3600, config.appid)
    token = new_token()
    store.save(token, session, 600, SessionScope.for_config(config))
    return token, session


@pytest.fixture
def api(fake_wechat: FakeWeChat) -> Iterator[WxApi]:
    wx = WxApi(config_for(fake_wechat), MemoryStore())
    yield wx
    wx.close()


def test_sign_with_session_key_is_hmac_sha256_hex() -> None:
    expected = hmac.new(b"c2Vzc2lvbmtleQ==", b"payload", hashlib.sha256).hexdigest()
    assert sign_with_session_key("c2Vzc2lvbmtleQ==", "payload") == expected
    session = WxSession("o", "c2Vzc2lvbmtleQ==", None, 0.0, 1.0)
    assert sign_with_session_key(session, "payload") == expected


def test_reset_stores_the_new_key_and_keeps_the_expiry(api: WxApi, fake_wechat: FakeWeChat) -> None:
    token, session = logged_in(fake_wechat, api.tokens.store, api.config)
    reset = api.reset_session_key(session)
    assert reset.session_key == fake_wechat.session_key_for("alice") != session.session_key
    assert reset.expires_at == session.expires_at
    scope = SessionScope.for_config(api.config)
    assert api.tokens.store.get(token, 600, scope).session_key == reset.session_key
    assert api.check_session(reset) is True and api.check_session(session) is False


def test_a_refused_key_is_invalid_session_and_45011_is_rate_limited(
    api: WxApi, fake_wechat: FakeWeChat
) -> None:
    _, session = logged_in(fake_wechat, api.tokens.store, api.config)
    stale = WxSession(session.openid, "bm90LXRoZS1rZXktYW55bW9yZQ==", None, 0.0, 4e9)
    for call in (api.reset_session_key, api.user_encrypt_keys):
        with pytest.raises(InvalidSession) as refused:
            call(stale)
        assert refused.value.status == 401 and refused.value.errcode == 87009
        assert stale.session_key not in str(refused.value)
    fake_wechat.inject("errcode", errcode=45011, path=RESET_SESSION_KEY_PATH)
    with pytest.raises(RateLimited) as limited:
        api.reset_session_key(session)
    assert limited.value.status == 429
    # WeChat's refusals of a session (87009: the signature, so the key is no longer current;
    # 87008: the user's session) are an invalid session, each by name.
    assert {87008, 87009} <= set(SESSION_REFUSED_ERRCODES)
    for code in (87008, 87009):
        assert isinstance(api_error(code, ""), InvalidSession) and api_error(code, "").status == 401


def test_a_store_down_after_the_reset_is_503_and_leaves_the_old_keys(
    fake_wechat: FakeWeChat,
) -> None:
    class DownOnRekey(MemoryStore):
        def set_session_key(self, *args: Any) -> int:
            raise StoreUnavailable()

    store = DownOnRekey()
    api = WxApi(config_for(fake_wechat), store)
    token, session = logged_in(fake_wechat, store, api.config)
    with pytest.raises(StoreUnavailable) as down:
        api.reset_session_key(session)
    assert down.value.status == 503
    found = store.get(token, 600, SessionScope.for_config(api.config))
    assert found is not None and found.session_key == session.session_key
    api.close()


def test_user_encrypt_keys(api: WxApi, fake_wechat: FakeWeChat) -> None:
    _, session = logged_in(fake_wechat, api.tokens.store, api.config)
    keys = api.user_encrypt_keys(session)
    assert [key.version for key in keys] == [1]
    assert 3590 <= keys[0].expire_in <= 3600 and len(keys[0].iv) == 16
    assert keys[0].encrypt_key not in repr(keys[0])
    call = fake_wechat.calls[-1]
    assert (call.method, call.path) == ("POST", USER_ENCRYPT_KEY_PATH)
    assert dict(call.query)["signature"] == sign_with_session_key(session, "")
    assert session.session_key not in call.raw_query


def test_async_api(fake_wechat: FakeWeChat) -> None:
    memory = MemoryStore()
    config = config_for(fake_wechat)
    token, session = logged_in(fake_wechat, memory, config)

    async def main() -> None:
        api = AsyncWxApi(config, AsyncMemoryStore(memory))
        reset = await api.reset_session_key(session)
        assert reset.session_key == fake_wechat.session_key_for("alice")
        assert [key.version for key in await api.user_encrypt_keys(reset)] == [1]
        await api.aclose()

    asyncio.run(main())
    assert memory.get(token, 600, SessionScope.for_config(config)).session_key == (
        fake_wechat.session_key_for("alice")
    )
