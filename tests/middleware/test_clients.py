"""What real clients send, from their public bug reports (issue 15), through both adapters."""

from __future__ import annotations

import logging
from typing import Callable

import pytest

from wxmiddleware.testing import FakeWeChat

from .drivers import Driver, app_config, assert_error


class TestWaferWithoutUserInfo:
    """wafer2-client-sdk sends String(undefined) / String(null) when it has no user info."""

    @pytest.mark.parametrize("unset", ["undefined", "null"])
    def test_logs_in_with_the_code_only_and_warns(
        self,
        app: Driver,
        fake_wechat: FakeWeChat,
        caplog: pytest.LogCaptureFixture,
        unset: str,
    ) -> None:
        caplog.set_level(logging.INFO, logger="wxmiddleware")
        headers = [
            ("X-WX-Code", fake_wechat.issue_code("carol")),
            ("X-WX-Encrypted-Data", unset),
            ("X-WX-IV", unset),
        ]
        reply = app.get("/wx/login", headers=headers)
        assert reply.status == 200, reply.body
        body = reply.json()
        assert body["code"] == 0
        assert body["data"]["userinfo"] == {
            "openId": fake_wechat.openid_for("carol"),
            "unionId": fake_wechat.unionid_for("carol"),
        }
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        message = warnings[0].getMessage()
        assert "X-WX-Encrypted-Data" in message and "Wafer" in message
        assert body["data"]["skey"] not in caplog.text

    def test_one_unset_header_beside_a_real_one_is_a_400(
        self, app: Driver, fake_wechat: FakeWeChat
    ) -> None:
        headers = [
            ("X-WX-Code", fake_wechat.issue_code()),
            ("X-WX-Encrypted-Data", "c29tZSBkYXRh"),
            ("X-WX-IV", "undefined"),
        ]
        reply = app.get("/wx/login", headers=headers)
        assert_error(reply, 400, "bad_request")
        assert reply.json()["code"] == -1


class TestLoginPathHints:
    @pytest.mark.parametrize("method", ["POST", "GET", "PUT"])
    def test_trailing_slash_names_the_login_path(
        self, app: Driver, fake_wechat: FakeWeChat, method: str
    ) -> None:
        reply = app.request(method, "/wx/login/", json={"code": fake_wechat.issue_code()})
        assert_error(reply, 404, "not_found")
        assert "POST /wx/login." in reply.json()["message"]
        assert reply.seen is None
        assert fake_wechat.jscode2session_calls == 0

    def test_trailing_slash_of_logout(self, app: Driver) -> None:
        reply = app.post("/wx/logout/")
        assert_error(reply, 404, "not_found")
        assert "POST /wx/logout." in reply.json()["message"]

    def test_configured_path_with_a_slash_and_without(
        self, make_app: Callable[..., Driver], fake_wechat: FakeWeChat
    ) -> None:
        app = make_app(config=app_config(fake_wechat, login_path="/auth/", allow_get_login=True))
        reply = app.post("/auth", json={"code": "x"})
        assert_error(reply, 404, "not_found")
        assert "POST or GET /auth/." in reply.json()["message"]

    def test_a_configured_path_keeps_its_kind(
        self, make_app: Callable[..., Driver], fake_wechat: FakeWeChat
    ) -> None:
        app = make_app(config=app_config(fake_wechat, public_paths=("/wx/*",)))
        reply = app.post("/wx/login/")
        assert reply.status == 200 and reply.seen is not None

    def test_wrong_method_names_method_and_path(self, app: Driver) -> None:
        reply = app.request("PUT", "/wx/login", json={"code": "x"})
        assert_error(reply, 405, "method_not_allowed")
        assert "POST /wx/login" in reply.json()["message"]
        assert reply.headers["allow"] == "POST"
