"""WxApi and AsyncWxApi against the fake WeChat over real sockets, and inside the apps the
README shows (Flask next to WxMiddleware, FastAPI next to WxASGIMiddleware).

No ``from __future__ import annotations``: FastAPI reads the annotations of the routes defined
inside a test, which it could not resolve from strings.
"""

import asyncio
import time
from typing import Any, Dict, Iterator, Tuple

import pytest

from tests.test_crypto import (
    APPID,
    ENCRYPTED_DATA,
    IV,
    RAW_DATA,
    SESSION_KEY,
    SIGNATURE,
    SIGNED_KEY,
)
from wxmiddleware import AsyncWxApi, MemoryStore, WxApi, WxConfig, WxMiddleware, WxSession
from wxmiddleware.crypto import WatermarkMismatch, session_signature
from wxmiddleware.errors import BadRequest, InvalidCode, UpstreamBusy, UpstreamError
from wxmiddleware.stores.aio import AsyncMemoryStore
from wxmiddleware.testing import CHECK_SESSION_PATH, PHONE_NUMBER_PATH, FakeWeChat
from wxmiddleware.wechat import ApiRequest, WeChatClient, parse_reply


def config_for(fake: FakeWeChat) -> WxConfig:
    return WxConfig(appid=fake.appid, secret=fake.secret, api_base=fake.url)


def log_in(fake: FakeWeChat, user: str = "alice") -> WxSession:
    client = WeChatClient(config_for(fake))
    reply = client.code_to_session(fake.issue_code(user))
    client.close()
    now = time.time()
    return WxSession(reply.openid, reply.session_key, reply.unionid, now, now + 86400)


@pytest.fixture
def api(fake_wechat: FakeWeChat) -> Iterator[WxApi]:
    opened = WxApi(config_for(fake_wechat), MemoryStore())
    yield opened
    opened.close()


# --- synchronous ---


def test_access_token(api: WxApi, fake_wechat: FakeWeChat) -> None:
    token = api.access_token()
    assert token in fake_wechat.issued_access_tokens
    assert api.access_token() == token
    assert fake_wechat.token_calls == 1


def test_check_session(api: WxApi, fake_wechat: FakeWeChat) -> None:
    session = log_in(fake_wechat)
    assert api.check_session(session) is True
    log_in(fake_wechat)  # the user logged in again: the old session_key is no longer current
    assert api.check_session(session) is False
    stranger = WxSession(session.openid, "c29tZS1vdGhlci1rZXkxMg==", None, 0.0, 4e9)
    assert api.check_session(stranger) is False
    assert fake_wechat.calls_to(CHECK_SESSION_PATH) == 3
    assert fake_wechat.token_calls == 1


def test_phone_number(api: WxApi, fake_wechat: FakeWeChat) -> None:
    code = fake_wechat.issue_phone_code("alice", phone="13800138000")
    info = api.get_phone_number(code)
    assert info["phoneNumber"] == info["purePhoneNumber"] == "13800138000"
    assert info["countryCode"] == "86"
    assert info["watermark"]["appid"] == fake_wechat.appid

    with pytest.raises(InvalidCode) as used:
        api.get_phone_number(code)
    assert (used.value.status, used.value.errcode) == (401, 40029)
    with pytest.raises(InvalidCode):
        api.get_phone_number("never-issued")
    assert fake_wechat.calls_to(PHONE_NUMBER_PATH) == 3  # a refused code is never retried


def test_missing_phone_code_never_reaches_wechat(api: WxApi, fake_wechat: FakeWeChat) -> None:
    with pytest.raises(BadRequest) as info:
        api.get_phone_number("")
    assert info.value.status == 400
    assert fake_wechat.calls == []


def test_busy_wechat_is_retried_once(api: WxApi, fake_wechat: FakeWeChat) -> None:
    fake_wechat.inject("errcode", errcode=-1, path=PHONE_NUMBER_PATH)
    assert api.get_phone_number(fake_wechat.issue_phone_code())["purePhoneNumber"]
    fake_wechat.inject("errcode", count=2, errcode=-1, path=PHONE_NUMBER_PATH)
    with pytest.raises(UpstreamBusy) as info:
        api.get_phone_number(fake_wechat.issue_phone_code())
    assert info.value.status == 503
    assert fake_wechat.calls_to(PHONE_NUMBER_PATH) == 4


def test_an_api_wxapi_does_not_wrap(api: WxApi, fake_wechat: FakeWeChat) -> None:
    session = log_in(fake_wechat)
    request = ApiRequest(
        "GET",
        CHECK_SESSION_PATH,
        params={
            "openid": session.openid,
            "signature": session_signature(session),
            "sig_method": "hmac_sha256",
        },
    )
    api.access_token()
    fake_wechat.expire_access_tokens()
    assert api.tokens.call(request, parse_reply) == {"errcode": 0, "errmsg": "ok"}
    assert fake_wechat.token_calls == 2  # refused, refetched, retried
    with pytest.raises(UpstreamError) as info:
        api.tokens.call(ApiRequest("GET", "/wxa/nothing"), parse_reply)
    assert info.value.status == 502


def test_decrypt_and_verify_signature_need_no_wechat(fake_wechat: FakeWeChat) -> None:
    config = WxConfig(appid=APPID, secret="s", api_base=fake_wechat.url)
    api = WxApi(config, MemoryStore())
    session = WxSession("oGZUI0egBJY1zhBYw2KhdUfwVJJE", SESSION_KEY, None, 0.0, 4e9)
    assert api.decrypt(session, ENCRYPTED_DATA, IV)["nickName"] == "Band"
    assert api.verify_signature(SIGNED_KEY, RAW_DATA, SIGNATURE) is True
    assert api.verify_signature(session, RAW_DATA, SIGNATURE) is False
    other_app = WxApi(config_for(fake_wechat), MemoryStore())
    with pytest.raises(WatermarkMismatch):  # the data belongs to another mini-program
        other_app.decrypt(session, ENCRYPTED_DATA, IV)
    assert fake_wechat.calls == []


# --- asyncio ---


def test_async_api(fake_wechat: FakeWeChat) -> None:
    session = log_in(fake_wechat)
    code = fake_wechat.issue_phone_code(phone="13912345678")

    async def main() -> Tuple[str, bool, Dict[str, Any]]:
        api = AsyncWxApi(config_for(fake_wechat), AsyncMemoryStore())
        try:
            token = await api.access_token()
            checked = await api.check_session(session)
            info = await api.get_phone_number(code)
            with pytest.raises(InvalidCode):
                await api.get_phone_number(code)
            with pytest.raises(BadRequest):
                await api.get_phone_number(" ")
            return token, checked, info
        finally:
            await api.aclose()

    token, checked, info = asyncio.run(main())
    assert token in fake_wechat.issued_access_tokens
    assert checked is True
    assert info["purePhoneNumber"] == "13912345678"
    assert fake_wechat.token_calls == 1
    assert fake_wechat.calls_to(PHONE_NUMBER_PATH) == 2


# --- in the apps, as the README shows ---


def test_flask_app_with_the_middlewares_store(fake_wechat: FakeWeChat) -> None:
    pytest.importorskip("flask")
    from flask import Flask, jsonify, request

    from wxmiddleware.errors import WxError

    app = Flask(__name__)
    middleware = WxMiddleware(app.wsgi_app, config=config_for(fake_wechat), store=MemoryStore())
    app.wsgi_app = middleware  # type: ignore[method-assign]
    wx = WxApi(middleware.config, middleware.store)

    @app.errorhandler(WxError)
    def wx_error(error: WxError) -> Any:
        return jsonify(error=error.error, message=error.message), error.status

    @app.post("/api/phone")
    def phone() -> Any:
        info = wx.get_phone_number(request.get_json()["code"])
        return jsonify(phone=info["purePhoneNumber"])

    @app.get("/api/session-check")
    def session_check() -> Any:
        return jsonify(valid=wx.check_session(request.environ["wxmiddleware.session"]))

    client = app.test_client()
    token = client.post("/wx/login", json={"code": fake_wechat.issue_code()}).json["3rd_session"]
    headers = {"3rd-session": token}
    code = fake_wechat.issue_phone_code(phone="13700000000")
    assert client.post("/api/phone", json={"code": code}, headers=headers).json == {
        "phone": "13700000000"
    }
    refused = client.post("/api/phone", json={"code": code}, headers=headers)
    assert refused.status_code == 401 and refused.json["error"] == "invalid_code"
    assert client.get("/api/session-check", headers=headers).json == {"valid": True}
    assert client.get("/api/session-check").status_code == 401  # the middleware's own answer
    # The token lives in the middleware's store: another worker's WxApi finds it there.
    other_worker = WxApi(middleware.config, middleware.store)
    assert other_worker.access_token() == wx.access_token()
    assert fake_wechat.token_calls == 1
    other_worker.close()
    wx.close()


def test_fastapi_app_with_the_middlewares_store(fake_wechat: FakeWeChat) -> None:
    pytest.importorskip("fastapi")
    from typing import Annotated

    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel
    from starlette.testclient import TestClient

    from wxmiddleware import WxASGIMiddleware
    from wxmiddleware.errors import WxError

    config = config_for(fake_wechat)
    store = AsyncMemoryStore()
    app = FastAPI()
    app.add_middleware(WxASGIMiddleware, config=config, store=store)
    wx = AsyncWxApi(config, store)

    async def current_session(request: Request) -> WxSession:
        session: WxSession = request.scope["wxmiddleware.session"]
        return session

    class PhoneCode(BaseModel):
        code: str

    @app.exception_handler(WxError)
    async def wx_error(request: Request, error: WxError) -> JSONResponse:
        body = {"error": error.error, "message": error.message}
        return JSONResponse(body, status_code=error.status)

    @app.post("/api/phone")
    async def phone(
        body: PhoneCode, session: Annotated[WxSession, Depends(current_session)]
    ) -> Dict[str, str]:
        info = await wx.get_phone_number(body.code)
        return {"openid": session.openid, "phone": info["purePhoneNumber"]}

    @app.get("/api/session-check")
    async def session_check(
        session: Annotated[WxSession, Depends(current_session)],
    ) -> Dict[str, bool]:
        return {"valid": await wx.check_session(session)}

    with TestClient(app) as client:
        login = client.post("/wx/login", json={"code": fake_wechat.issue_code()})
        headers = {"3rd-session": login.json()["3rd_session"]}
        code = fake_wechat.issue_phone_code(phone="13600000000")
        answer = client.post("/api/phone", json={"code": code}, headers=headers)
        assert answer.json() == {
            "openid": fake_wechat.openid_for("alice"),
            "phone": "13600000000",
        }
        refused = client.post("/api/phone", json={"code": code}, headers=headers)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_code"
        assert client.get("/api/session-check", headers=headers).json() == {"valid": True}
    assert fake_wechat.token_calls == 1
