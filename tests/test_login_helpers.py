"""The login helpers users call from their own tests, with each kind of test client."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable, Dict, List

import pytest
from webtest import TestApp

from wxmiddleware import MemoryStore, WxConfig, WxMiddleware
from wxmiddleware.testing import FakeWeChat, LoginFailed, log_in, log_in_async


def inner(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"openid": environ["wxmiddleware.openid"]}).encode()]


@pytest.fixture
def wrapped(fake_wechat: FakeWeChat) -> WxMiddleware:
    config = WxConfig(appid=fake_wechat.appid, secret=fake_wechat.secret, api_base=fake_wechat.url)
    return WxMiddleware(inner, config=config, store=MemoryStore())


def test_webtest(wrapped: WxMiddleware, fake_wechat: FakeWeChat) -> None:
    client = TestApp(wrapped)
    token = log_in(client, fake_wechat, "bob")
    me = client.get("/api/me", headers={"3rd-session": token}).json
    assert me == {"openid": fake_wechat.openid_for("bob")}


def test_flask_test_client(fake_wechat: FakeWeChat) -> None:
    flask = pytest.importorskip("flask")
    app = flask.Flask(__name__)

    @app.get("/api/me")
    def me() -> Any:
        return {"openid": flask.request.environ["wxmiddleware.openid"]}

    config = WxConfig(appid=fake_wechat.appid, secret=fake_wechat.secret, api_base=fake_wechat.url)
    app.wsgi_app = WxMiddleware(app.wsgi_app, config=config, store=MemoryStore())  # type: ignore
    client = app.test_client()
    token = log_in(client, fake_wechat)
    answer = client.get("/api/me", headers={"3rd-session": token}).get_json()
    assert answer == {"openid": fake_wechat.openid_for("alice")}


def test_httpx_client(wrapped: WxMiddleware, fake_wechat: FakeWeChat) -> None:
    httpx = pytest.importorskip("httpx")
    with httpx.Client(transport=httpx.WSGITransport(app=wrapped), base_url="http://t") as client:
        token = log_in(client, fake_wechat)
        assert client.get("/api/me", headers={"3rd-session": token}).status_code == 200


def test_httpx_async_client(fake_wechat: FakeWeChat) -> None:
    httpx = pytest.importorskip("httpx")
    asgi = pytest.importorskip("wxmiddleware.asgi")

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        body = json.dumps({"openid": scope["wxmiddleware.openid"]}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    config = WxConfig(appid=fake_wechat.appid, secret=fake_wechat.secret, api_base=fake_wechat.url)
    wrapped = asgi.WxASGIMiddleware(app, config=config.with_options(store="memory://"))

    async def run() -> None:
        transport = httpx.ASGITransport(app=wrapped)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            token = await log_in_async(client, fake_wechat)
            me = await client.get("/api/me", headers={"3rd-session": token})
            assert me.json() == {"openid": fake_wechat.openid_for("alice")}

    asyncio.run(run())


def test_failed_login_raises(wrapped: WxMiddleware, fake_wechat: FakeWeChat) -> None:
    fake_wechat.inject("errcode", errcode=40226)
    with pytest.raises(LoginFailed, match="403"):
        log_in(TestApp(wrapped), fake_wechat)


def test_wx_login_fixture(wrapped: WxMiddleware, wx_login: Callable[..., str]) -> None:
    client = TestApp(wrapped)
    token = wx_login(client, "carol")
    assert client.get("/api/me", headers={"3rd-session": token}).status_int == 200
