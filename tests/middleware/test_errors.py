"""Errors: never a secret in an answer or a log line, never a traceback; the app's own
exceptions are not ours to answer. Through both adapters."""

from __future__ import annotations

import logging
from typing import Any, Callable, List, NoReturn

import pytest

from wxmiddleware import WxSession
from wxmiddleware.testing import FakeWeChat

from .drivers import Driver, Request, assert_error


def test_nothing_secret_is_answered_or_logged(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    session_keys: List[str] = []

    def remember_key(session: WxSession, request: Request) -> None:
        session_keys.append(session.session_key)

    app = make_app(on_login=remember_key)
    answers: List[str] = []
    token = app.login(fake_wechat)
    for fault, params in [
        ("errcode", {"errcode": 40125}),
        ("errcode", {"errcode": -1}),
        ("errcode", {"errcode": 12345, "errmsg": "odd"}),
        ("html", {}),
        ("slow", {"delay": 4}),
        ("http_status", {"status": 500}),
        ("close", {}),
        ("truncated", {}),
    ]:
        fake_wechat.inject(fault, count=2, **params)
        reply = app.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert reply.status >= 500
        answers.append(reply.text + str(reply.headers))
    reply = app.me(token)
    answers.append(reply.text + str(reply.headers))
    assert app.post("/wx/logout", headers=[("3rd-session", token)]).status == 204
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "login failed" in logged
    assert "WeChat GET /sns/jscode2session: HTTP 200" in logged  # the client's own record
    assert session_keys
    for text in ["\n".join(answers), logged]:
        assert fake_wechat.secret not in text
        assert "js_code" not in text and "secret=" not in text
        assert token not in text
        for key in session_keys:
            assert key not in text


def test_a_fault_of_ours_is_500_json_and_a_logged_traceback(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_hook(session: WxSession, request: Request) -> None:
        raise RuntimeError("a bug")

    app = make_app(on_login=broken_hook)
    reply = app.post("/wx/login", json={"code": fake_wechat.issue_code()})
    assert_error(reply, 500, "internal_error")
    assert "a bug" not in reply.text
    [record] = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert record.getMessage() == "internal error: RuntimeError"
    # The operator gets the traceback (the client never does).
    assert record.exc_info is not None and str(record.exc_info[1]) == "a bug"


def test_errors_of_the_app_are_not_ours(make_app: Callable[..., Driver]) -> None:
    def failing_app(*args: Any) -> NoReturn:  # fails as a WSGI call or an ASGI call
        raise LookupError("the app's own bug")

    app = make_app()
    app.middleware.app = failing_app
    with pytest.raises(LookupError):
        app.get("/health")
