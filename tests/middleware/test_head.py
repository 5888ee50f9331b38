"""HEAD is treated like GET, and the middleware's answers to it carry no body (issues 15, 17).

The body is checked as the adapter emits it (``raw``): a test client may drop a HEAD body by
itself and hide one that a server would write onto a kept-alive connection.
"""

from __future__ import annotations

from typing import Callable, Sequence, Tuple

import pytest

from wxmiddleware.testing import FakeWeChat

from .drivers import Driver, app_config
from .stubs import down_store

Headers = Sequence[Tuple[str, str]]


def assert_head_like_get(app: Driver, path: str, headers: Headers = ()) -> None:
    get = app.raw("GET", path, headers)
    head = app.raw("HEAD", path, headers)
    assert get.body, "the GET answer should have a body to compare with"
    assert head.status == get.status
    assert head.body == b""
    assert head.headers == get.headers
    assert int(head.headers["content-length"]) == len(get.body)
    assert head.seen is None


class TestHeadAnswers:
    @pytest.mark.parametrize(
        "path", ["/api/me", "/wx/login", "/wx/logout", "/wx/login/", "/wx/logout/"]
    )
    def test_every_error_answer(self, app: Driver, path: str) -> None:
        assert_head_like_get(app, path)

    def test_invalid_and_conflicting_tokens(self, app: Driver) -> None:
        assert_head_like_get(app, "/api/me", [("3rd-session", "A" * 43)])
        assert_head_like_get(app, "/api/me", [("3rd-session", "a"), ("X-WX-Skey", "b")])
        assert_head_like_get(app, "/api/me", [("3rd-session", "not a token!")])

    def test_wafer_dialect(self, app: Driver) -> None:
        assert_head_like_get(app, "/api/me", [("X-WX-Skey", "A" * 43)])
        assert_head_like_get(app, "/wx/login", [("X-WX-Code", "")])
        # A Wafer login by HEAD is refused in Wafer's dialect, bodiless.
        head = app.raw("HEAD", "/wx/login", [("X-WX-Code", "x")])
        assert head.status == 405 and head.body == b""
        assert int(head.headers["content-length"]) > 0

    def test_store_down(self, make_app: Callable[..., Driver], adapter: str) -> None:
        app = make_app(store=down_store(adapter))
        assert_head_like_get(app, "/api/me", [("3rd-session", "A" * 43)])

    def test_under_a_cors_policy(
        self, make_app: Callable[..., Driver], fake_wechat: FakeWeChat
    ) -> None:
        app = make_app(config=app_config(fake_wechat, cors_origins=("https://h5.example.com",)))
        assert_head_like_get(app, "/api/me", [("Origin", "https://h5.example.com")])

    def test_head_never_logs_in(
        self, make_app: Callable[..., Driver], fake_wechat: FakeWeChat
    ) -> None:
        # HEAD is safe (RFC 9110, 9.2.1): it must not spend a one-time code.
        app = make_app(allow_get_login=True)
        code = fake_wechat.issue_code()
        reply = app.raw("HEAD", f"/wx/login?code={code}")
        assert reply.status == 405 and reply.body == b""
        assert reply.headers["allow"] == "POST, GET"
        assert fake_wechat.jscode2session_calls == 0
        assert app.get("/wx/login", query={"code": code}).status == 200


class TestHeadIsTreatedLikeGet:
    def test_needs_a_token_and_reaches_the_app_with_one(
        self, app: Driver, fake_wechat: FakeWeChat
    ) -> None:
        token = app.login(fake_wechat)
        reply = app.raw("HEAD", "/api/me", [("3rd-session", token)])
        assert reply.status == 200
        assert reply.seen is not None and reply.seen.openid == fake_wechat.openid_for("alice")

    def test_public_and_optional_paths(self, app: Driver) -> None:
        for path in ("/health", "/feed"):
            reply = app.raw("HEAD", path)
            assert reply.status == 200 and reply.seen is not None
