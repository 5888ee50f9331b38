"""Wafer clients (Tencent's wafer2-client-sdk) on both middlewares, against the fake WeChat.

What the client does, and so what these tests send and check (wafer2-client-sdk lib/login.js
and lib/request.js): it logs in with ``GET`` (or the ``method`` it is given) to its
``loginUrl`` with the code in ``X-WX-Code`` and, after ``wx.getUserInfo``, the encrypted user
info in ``X-WX-Encrypted-Data`` and ``X-WX-IV``; it accepts only
``{"code": 0, "data": {"skey": ..., "userinfo": {...}}}`` with a ``userinfo``; it sends
``data.skey`` back in ``X-WX-Skey``; and on ``"code": -1`` in any later answer it drops the
skey, logs in again and retries once.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Mapping, Optional, Tuple

import httpx
import pytest
from webtest import TestApp

from wxmiddleware import (
    AsyncMemoryStore,
    MemoryStore,
    WxASGIMiddleware,
    WxConfig,
    WxMiddleware,
    WxSession,
    core,
)
from wxmiddleware.core import _wafer
from wxmiddleware.crypto import IllegalBuffer
from wxmiddleware.errors import InvalidSession, StoreUnavailable
from wxmiddleware.testing import FakeWeChat

from .wafer_support import (
    USER_INFO,
    encrypt_user_info,
    pin_session_key,
    user_info_for,
    wafer_headers,
)

pytest.importorskip("cryptography")
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def session_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The session_key the fake WeChat gives every login of this test (see wafer_support)."""
    return pin_session_key(monkeypatch)


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    json: Any
    text: str


class Client:
    """One middleware under test: WSGI through WebTest, or ASGI through httpx."""

    def __init__(
        self, send: Callable[[str, str, Mapping[str, str], Optional[bytes]], Awaitable[Answer]]
    ) -> None:
        self.send = send

    async def request(
        self,
        method: str,
        path: str,
        headers: Optional[Mapping[str, str]] = None,
        json_body: Any = None,
    ) -> Answer:
        all_headers = dict(headers or {})
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        return await self.send(method, path, all_headers, body)

    async def me(self, skey: str) -> Answer:
        return await self.request("GET", "/api/me", {"X-WX-Skey": skey})


def inner_wsgi(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"openid": environ.get("wxmiddleware.openid")}).encode()]


async def inner_asgi(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    body = json.dumps({"openid": scope.get("wxmiddleware.openid")}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def wsgi_client(middleware: WxMiddleware) -> Client:
    app = TestApp(middleware)

    async def send(
        method: str, path: str, headers: Mapping[str, str], body: Optional[bytes]
    ) -> Answer:
        response = app.request(
            path, method=method, headers=dict(headers), body=body or b"", expect_errors=True
        )
        payload = json.loads(response.body) if response.body else None
        answer_headers = {name.lower(): value for name, value in response.headers.items()}
        return Answer(response.status_int, answer_headers, payload, response.text)

    return Client(send)


def asgi_client(middleware: WxASGIMiddleware, clients: List[httpx.AsyncClient]) -> Client:
    transport = httpx.ASGITransport(app=middleware)
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    clients.append(client)

    async def send(
        method: str, path: str, headers: Mapping[str, str], body: Optional[bytes]
    ) -> Answer:
        response = await client.request(method, path, headers=headers, content=body)
        payload = response.json() if response.content else None
        return Answer(response.status_code, response.headers, payload, response.text)

    return Client(send)


class DownStore(MemoryStore):
    """A store that cannot be reached."""

    def get(self, token: str, idle_ttl: int, scope: Any) -> Optional[WxSession]:
        raise StoreUnavailable()


class AsyncDownStore(AsyncMemoryStore):
    """An asynchronous store that cannot be reached."""

    async def get(self, token: str, idle_ttl: int, scope: Any) -> Optional[WxSession]:
        raise StoreUnavailable()


@pytest.fixture(params=["wsgi", "asgi"])
async def make_client(
    request: pytest.FixtureRequest, fake_wechat: FakeWeChat
) -> AsyncIterator[Callable[..., Client]]:
    """``make_client(store_down=False, on_login=None, **config)``: each middleware, as a Client."""
    clients: List[httpx.AsyncClient] = []

    def make(store_down: bool = False, on_login: Any = None, **options: Any) -> Client:
        config = WxConfig(
            appid=fake_wechat.appid,
            secret=fake_wechat.secret,
            api_base=fake_wechat.url,
            public_paths=("/health",),
            connect_timeout=2.0,
            read_timeout=2.0,
            **options,
        )
        if request.param == "wsgi":
            store = DownStore() if store_down else MemoryStore()
            return wsgi_client(
                WxMiddleware(inner_wsgi, config=config, store=store, on_login=on_login)
            )
        async_store = AsyncDownStore() if store_down else AsyncMemoryStore()
        middleware = WxASGIMiddleware(
            inner_asgi, config=config, store=async_store, on_login=on_login
        )
        return asgi_client(middleware, clients)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def client(make_client: Callable[..., Client]) -> Client:
    return make_client()


class TestLogin:
    async def test_code_only(self, client: Client, fake_wechat: FakeWeChat) -> None:
        # GET, as the Wafer client logs in by default, though allow_get_login is off.
        answer = await client.request("GET", "/wx/login", wafer_headers(fake_wechat.issue_code()))
        assert answer.status == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["cache-control"] == "no-store"
        skey = answer.json["data"]["skey"]
        assert answer.json == {
            "code": 0,
            "data": {
                "skey": skey,
                "userinfo": {
                    "openId": fake_wechat.openid_for("alice"),
                    "unionId": fake_wechat.unionid_for("alice"),
                },
            },
        }
        me = await client.me(skey)
        assert (me.status, me.json) == (200, {"openid": fake_wechat.openid_for("alice")})

    async def test_with_encrypted_user_info(
        self, client: Client, fake_wechat: FakeWeChat, session_key: str
    ) -> None:
        encrypted = user_info_for(session_key, fake_wechat.appid)
        code = fake_wechat.issue_code("bob")
        answer = await client.request("GET", "/wx/login", wafer_headers(code, encrypted))
        assert answer.status == 200, answer.text
        assert answer.json["code"] == 0
        # The watermark is dropped; the ids come from the session (newer encrypted user info
        # has none).
        assert answer.json["data"]["userinfo"] == {
            **USER_INFO,
            "openId": fake_wechat.openid_for("bob"),
            "unionId": fake_wechat.unionid_for("bob"),
        }
        assert session_key not in answer.text
        me = await client.me(answer.json["data"]["skey"])
        assert me.json == {"openid": fake_wechat.openid_for("bob")}

    async def test_post_is_a_wafer_login_too_and_its_body_is_not_read(
        self, client: Client, fake_wechat: FakeWeChat
    ) -> None:
        code = fake_wechat.issue_code()
        answer = await client.request("POST", "/wx/login", wafer_headers(code), {"code": "other"})
        assert answer.status == 200 and answer.json["code"] == 0
        assert dict(fake_wechat.calls[-1].query)["js_code"] == code

    async def test_retried_code_gives_the_same_skey(
        self, client: Client, fake_wechat: FakeWeChat
    ) -> None:
        headers = wafer_headers(fake_wechat.issue_code())
        first = await client.request("GET", "/wx/login", headers)
        second = await client.request("GET", "/wx/login", headers)
        assert first.json == second.json
        assert fake_wechat.jscode2session_calls == 1

    async def test_the_ordinary_login_is_unchanged(
        self, client: Client, fake_wechat: FakeWeChat
    ) -> None:
        answer = await client.request("POST", "/wx/login", None, {"code": fake_wechat.issue_code()})
        assert set(answer.json) == {"3rd_session", "expires_in"}
        # Our token, from our login, works in X-WX-Skey too.
        assert (await client.me(answer.json["3rd_session"])).status == 200
        refused = await client.request("GET", "/wx/login?code=abc")
        assert refused.status == 405 and "code" not in refused.json
        assert refused.headers["allow"] == "POST"

    async def test_hook_sees_the_user_info_and_adds_to_data(
        self, make_client: Callable[..., Client], fake_wechat: FakeWeChat, session_key: str
    ) -> None:
        seen: List[Tuple[str, Any]] = []

        def on_login(session: WxSession, environ: Mapping[str, Any]) -> Dict[str, Any]:
            seen.append((session.openid, environ["wxmiddleware.userinfo"]))
            return {"nickName": "from the hook", "skey": "not this"}

        client = make_client(on_login=on_login)
        encrypted = user_info_for(session_key, fake_wechat.appid)
        answer = await client.request(
            "GET", "/wx/login", wafer_headers(fake_wechat.issue_code(), encrypted)
        )
        data = answer.json["data"]
        assert data["nickName"] == "from the hook"
        assert data["skey"] != "not this" and len(data["skey"]) == 43
        assert seen == [(fake_wechat.openid_for("alice"), data["userinfo"])]

    async def test_wafer_compat_off(
        self, make_client: Callable[..., Client], fake_wechat: FakeWeChat
    ) -> None:
        client = make_client(wafer_compat=False)
        headers = wafer_headers(fake_wechat.issue_code())
        refused = await client.request("GET", "/wx/login", headers)
        assert refused.status == 405 and "code" not in refused.json
        answer = await client.request("POST", "/wx/login", headers, {"code": headers["X-WX-Code"]})
        assert set(answer.json) == {"3rd_session", "expires_in"}
        unknown = await client.me("A" * 43)
        assert unknown.status == 401 and "code" not in unknown.json


class TestUndecryptableUserInfo:
    @pytest.mark.parametrize(
        ("make_encrypted", "errcode"),
        [
            # Encrypted under another session's key: wx.getUserInfo called before wx.login.
            (
                lambda key: encrypt_user_info(base64.b64encode(b"k" * 16).decode(), {}),
                -41003,
            ),
            (
                lambda key: encrypt_user_info(key, {"watermark": {"appid": "wxother"}}),
                -41003,
            ),
            (lambda key: ("not base64!", base64.b64encode(b"i" * 16).decode()), -41004),
            (lambda key: (encrypt_user_info(key, {})[0], "c2hvcnQ="), -41002),
        ],
        ids=["other-key", "other-appid", "bad-base64", "short-iv"],
    )
    async def test_answers_the_decrypt_error_and_keeps_the_session(
        self,
        client: Client,
        fake_wechat: FakeWeChat,
        session_key: str,
        make_encrypted: Callable[[str], Tuple[str, str]],
        errcode: int,
    ) -> None:
        code = fake_wechat.issue_code()
        bad = make_encrypted(session_key)
        answer = await client.request("GET", "/wx/login", wafer_headers(code, bad))
        assert answer.status == 400, answer.text
        assert answer.json == {
            "code": -1,
            "error": "decrypt_failed",
            "message": answer.json["message"],
            "errcode": errcode,
        }
        assert session_key not in answer.text
        # The code was good, so the session exists: the same code with data that decrypts
        # (wx.getUserInfo called again after wx.login) gets it, without calling WeChat again.
        good = user_info_for(session_key, fake_wechat.appid)
        retried = await client.request("GET", "/wx/login", wafer_headers(code, good))
        assert retried.status == 200 and retried.json["data"]["userinfo"]["nickName"] == "Band"
        assert fake_wechat.jscode2session_calls == 1

    async def test_without_cryptography_the_log_says_what_to_install(
        self,
        client: Client,
        fake_wechat: FakeWeChat,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        def decrypt_without_cryptography(*args: Any) -> Dict[str, Any]:
            raise ModuleNotFoundError("No module named 'cryptography'")

        monkeypatch.setattr(_wafer, "decrypt_data", decrypt_without_cryptography)
        encrypted = ("QUFBQUFBQUFBQUFBQUFBQQ==", "QUFBQUFBQUFBQUFBQUFBQQ==")
        with caplog.at_level(logging.ERROR, logger="wxmiddleware"):
            answer = await client.request(
                "GET", "/wx/login", wafer_headers(fake_wechat.issue_code(), encrypted)
            )
        assert answer.status == 500
        assert answer.json["code"] == -1 and answer.json["error"] == "internal_error"
        assert "wxmiddleware[crypto]" in caplog.text


class TestErrors:
    async def test_login_errors_keep_our_shape_and_status_plus_code(
        self, client: Client, fake_wechat: FakeWeChat
    ) -> None:
        answer = await client.request("GET", "/wx/login", wafer_headers("never-issued"))
        assert answer.status == 401
        assert answer.json == {
            "code": -1,
            "error": "invalid_code",
            "message": answer.json["message"],
            "errcode": 40029,
        }
        assert answer.headers["www-authenticate"].startswith("WxSession")
        fake_wechat.inject("errcode", errcode=45011)
        limited = await client.request("GET", "/wx/login", wafer_headers(fake_wechat.issue_code()))
        assert limited.status == 429 and limited.headers["retry-after"]
        assert (limited.json["code"], limited.json["error"]) == (-1, "rate_limited")

    async def test_invalid_skey_is_401_with_code_so_the_client_logs_in_again(
        self, client: Client, fake_wechat: FakeWeChat
    ) -> None:
        answer = await client.request("GET", "/wx/login", wafer_headers(fake_wechat.issue_code()))
        skey = answer.json["data"]["skey"]
        logout = await client.request("POST", "/wx/logout", {"X-WX-Skey": skey})
        assert logout.status == 204
        expired = await client.me(skey)
        assert expired.status == 401
        assert expired.json == {
            "code": -1,
            "error": "invalid_session",
            "message": InvalidSession.default_message,
        }
        # The same token in our own header: our answer, unchanged.
        ours = await client.request("GET", "/api/me", {"3rd-session": skey})
        assert ours.status == 401 and "code" not in ours.json

    async def test_a_store_that_is_down_does_not_make_the_client_drop_its_skey(
        self, make_client: Callable[..., Client]
    ) -> None:
        answer = await make_client(store_down=True).me("A" * 43)
        assert answer.status == 503
        assert answer.json["error"] == "store_unavailable" and "code" not in answer.json


class TestCore:
    config = WxConfig(appid="wxappid", secret="s3cret-value")
    names = core.HeaderNames.for_config(config)
    session = WxSession("openid-1", base64.b64encode(b"k" * 16).decode(), None, 0.0, 1.0)

    @staticmethod
    def lookup(**headers: str) -> Dict[str, str]:
        return {name.replace("_", "-").lower(): value for name, value in headers.items()}

    def test_not_a_wafer_login(self) -> None:
        assert core.wafer_login(self.config, self.lookup(), self.names) is None
        assert core.wafer_login(self.config, self.lookup(X_WX_Skey="x"), self.names) is None
        off = self.config.with_options(wafer_compat=False)
        assert core.wafer_login(off, self.lookup(X_WX_Code="abc"), self.names) is None

    def test_wafer_login(self) -> None:
        login = core.wafer_login(self.config, self.lookup(X_WX_Code="abc"), self.names)
        assert login == core.WaferLogin("abc")
        assert "abc" not in repr(login)
        # Empty user info headers count as absent, as the Wafer servers treat them.
        login = core.wafer_login(
            self.config,
            self.lookup(X_WX_Code="abc", X_WX_Encrypted_Data="", X_WX_IV=""),
            self.names,
        )
        assert login == core.WaferLogin("abc")
        login = core.wafer_login(
            self.config,
            self.lookup(X_WX_Code="abc", X_WX_Encrypted_Data="ZA==", X_WX_IV="aQ=="),
            self.names,
        )
        assert login == core.WaferLogin("abc", "ZA==", "aQ==")

    def test_userinfo_never_holds_the_session_key(self) -> None:
        login = core.WaferLogin("abc")
        assert core.wafer_userinfo(login, self.session, self.config) == {"openId": "openid-1"}
        encrypted = encrypt_user_info(self.session.session_key, {"openId": "o", "watermark": {}})
        with pytest.raises(IllegalBuffer):  # a watermark without our appid
            core.wafer_userinfo(core.WaferLogin("abc", *encrypted), self.session, self.config)

    def test_which_errors_carry_the_wafer_code(self) -> None:
        skey = self.lookup(X_WX_Skey="x")
        login = self.lookup(X_WX_Code="x")
        protected, kind_login = core.RequestKind.PROTECTED, core.RequestKind.LOGIN
        assert core.wafer_error(self.config, protected, InvalidSession(), skey, self.names)
        assert not core.wafer_error(self.config, protected, StoreUnavailable(), skey, self.names)
        nothing = self.lookup()
        assert not core.wafer_error(self.config, protected, InvalidSession(), nothing, self.names)
        assert core.wafer_error(self.config, kind_login, StoreUnavailable(), login, self.names)
        assert not core.wafer_error(self.config, kind_login, StoreUnavailable(), skey, self.names)
        off = self.config.with_options(wafer_compat=False)
        assert not core.wafer_error(off, protected, InvalidSession(), skey, self.names)

    def test_error_response_leads_with_the_code(self) -> None:
        body = core.error_response(InvalidSession(), wafer=True).body
        assert list(json.loads(body)) == ["code", "error", "message"]
