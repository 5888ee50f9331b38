"""The login path, through both adapters, against the fake WeChat server on loopback."""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List

import pytest

from wxmiddleware import WxConfig, WxSession
from wxmiddleware.testing import FakeWeChat

from .drivers import UNREADABLE, Driver, Request, assert_error, path_of
from .stubs import down_store

JSON = ("Content-Type", "application/json")


class TestLogin:
    def test_json_login(self, app: Driver, fake_wechat: FakeWeChat) -> None:
        reply = app.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert reply.status == 200
        assert set(reply.json()) == {"3rd_session", "expires_in"}
        assert len(reply.json()["3rd_session"]) >= 43
        assert reply.json()["expires_in"] == 7200
        assert reply.headers["cache-control"] == "no-store"

    def test_form_login_and_alias(self, app: Driver, fake_wechat: FakeWeChat) -> None:
        assert app.post("/wx/login", form={"code": fake_wechat.issue_code()}).status == 200
        assert app.post("/wx/login", json={"wxCode": fake_wechat.issue_code()}).status == 200

    def test_get_login_is_405_unless_allowed(
        self, make_app: Callable[..., Driver], fake_wechat: FakeWeChat
    ) -> None:
        reply = make_app().get("/wx/login", query={"code": "x"})
        assert_error(reply, 405, "method_not_allowed")
        assert reply.headers["allow"] == "POST"
        allowed = make_app(allow_get_login=True)
        assert allowed.get("/wx/login", query={"code": fake_wechat.issue_code()}).status == 200

    def test_expose_openid_and_hook(
        self, make_app: Callable[..., Driver], fake_wechat: FakeWeChat
    ) -> None:
        seen: List[str] = []

        def on_login(session: WxSession, request: Request) -> Dict[str, Any]:
            seen.append(path_of(request))
            return {"is_new": True}

        app = make_app(expose_openid=True, on_login=on_login)
        body = app.post("/wx/login", json={"code": fake_wechat.issue_code("bob")}).json()
        assert body["openid"] == fake_wechat.openid_for("bob")
        assert body["unionid"] == fake_wechat.unionid_for("bob")
        assert body["is_new"] is True and seen == ["/wx/login"]
        assert "session_key" not in body

    def test_retried_code_gives_the_same_session(
        self, app: Driver, fake_wechat: FakeWeChat
    ) -> None:
        code = fake_wechat.issue_code()
        first = app.post("/wx/login", json={"code": code}).json()
        second = app.post("/wx/login", json={"code": code}).json()
        assert first["3rd_session"] == second["3rd_session"]
        assert fake_wechat.jscode2session_calls == 1

    def test_retried_code_after_logout_is_invalid(
        self, app: Driver, fake_wechat: FakeWeChat
    ) -> None:
        code = fake_wechat.issue_code()
        token = app.post("/wx/login", json={"code": code}).json()["3rd_session"]
        assert app.post("/wx/logout", headers=[("3rd-session", token)]).status == 204
        assert_error(app.post("/wx/login", json={"code": code}), 401, "invalid_code")

    @pytest.mark.parametrize(("attempts", "latency"), [(8, 0.2), (2, 0.3)])
    def test_concurrent_duplicates_make_one_upstream_call(
        self, app: Driver, fake_wechat: FakeWeChat, attempts: int, latency: float
    ) -> None:
        fake_wechat.latency = latency
        code = fake_wechat.issue_code()
        replies: List[Any] = []

        def attempt() -> None:
            replies.append(app.post("/wx/login", json={"code": code}))

        threads = [threading.Thread(target=attempt) for _ in range(attempts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(replies) == attempts
        assert all(reply.status == 200 for reply in replies)
        assert len({reply.json()["3rd_session"] for reply in replies}) == 1
        assert fake_wechat.jscode2session_calls == 1

    def test_several_sessions_per_user(self, app: Driver, fake_wechat: FakeWeChat) -> None:
        first, second = app.login(fake_wechat), app.login(fake_wechat)
        assert first != second
        for token in (first, second):
            seen = app.me(token).seen
            assert seen is not None and seen.openid == fake_wechat.openid_for("alice")


class TestLoginFailures:
    @pytest.mark.parametrize(
        ("errcode", "status", "error", "calls"),
        [
            (-1, 503, "upstream_busy", 2),
            (40029, 401, "invalid_code", 1),
            (40163, 401, "invalid_code", 1),
            (45011, 429, "rate_limited", 1),
            (40226, 403, "user_blocked", 1),
            (40013, 502, "upstream_error", 1),
            (40125, 502, "upstream_error", 1),
        ],
    )
    def test_errcodes(
        self,
        app: Driver,
        fake_wechat: FakeWeChat,
        errcode: int,
        status: int,
        error: str,
        calls: int,
    ) -> None:
        fake_wechat.inject("errcode", count=2, errcode=errcode)
        reply = app.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert_error(reply, status, error)
        assert reply.json()["errcode"] == errcode
        assert fake_wechat.jscode2session_calls == calls
        if status == 429:
            assert reply.headers["retry-after"] == "60"

    def test_busy_once_then_success(self, app: Driver, fake_wechat: FakeWeChat) -> None:
        fake_wechat.inject("errcode", count=1, errcode=-1)
        assert app.post("/wx/login", json={"code": fake_wechat.issue_code()}).status == 200
        assert fake_wechat.jscode2session_calls == 2

    @pytest.mark.parametrize(
        "fault", ["html", "http_status", "truncated", "no_openid", "huge", "invalid_json"]
    )
    def test_unusable_upstream_is_502(
        self, app: Driver, fake_wechat: FakeWeChat, fault: str
    ) -> None:
        fake_wechat.inject(fault)
        reply = app.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert reply.status == 502
        assert reply.json()["error"].startswith("upstream")
        assert fake_wechat.jscode2session_calls == 1

    def test_closed_connection_is_502(self, app: Driver, fake_wechat: FakeWeChat) -> None:
        fake_wechat.inject("close", count=2)
        reply = app.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert_error(reply, 502, "upstream_error")

    def test_read_timeout_is_504_and_not_retried(
        self, app: Driver, fake_wechat: FakeWeChat
    ) -> None:
        fake_wechat.inject("slow", delay=4)
        reply = app.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert_error(reply, 504, "upstream_timeout")
        assert fake_wechat.jscode2session_calls == 1

    def test_slow_drip_is_504(self, app: Driver, fake_wechat: FakeWeChat) -> None:
        fake_wechat.inject("drip", interval=0.2, length=200)
        reply = app.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert_error(reply, 504, "upstream_timeout")

    def test_unreachable_is_502(self, make_app: Callable[..., Driver]) -> None:
        config = WxConfig(appid="wxa", secret="s3cret-value", api_base="http://127.0.0.1:9")
        reply = make_app(config=config).post("/wx/login", json={"code": "abc"})
        assert_error(reply, 502, "upstream_unreachable")

    def test_store_down_is_503(
        self, make_app: Callable[..., Driver], adapter: str, fake_wechat: FakeWeChat
    ) -> None:
        app = make_app(store=down_store(adapter))
        reply = app.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert_error(reply, 503, "store_unavailable")
        assert_error(app.me("A" * 43), 503, "store_unavailable")
        assert app.get("/health").status == 200


class TestBadLoginRequests:
    @pytest.mark.parametrize(
        ("body", "content_type", "status"),
        [
            (b"", "application/json", 400),
            (b"{", "application/json", 400),
            (b"[]", "application/json", 400),
            (b'{"code": null}', "application/json", 400),
            (b'{"code": 5}', "application/json", 400),
            (b'{"code": ""}', "application/json", 400),
            (b"\xff", "application/json", 400),
            (b"code=a&code=b", "application/x-www-form-urlencoded", 400),
            (b"code=abc", "text/plain", 415),
        ],
    )
    def test_bad_bodies(self, app: Driver, body: bytes, content_type: str, status: int) -> None:
        reply = app.post("/wx/login", body=body, content_type=content_type)
        assert reply.status == status
        assert reply.headers["content-type"] == "application/json"
        assert "error" in reply.json()
        assert app.inner.requests == []

    def test_oversized_body_is_refused_before_reading(self, app: Driver) -> None:
        reply = app.raw("POST", "/wx/login", [JSON, ("Content-Length", "100000")], UNREADABLE)
        assert_error(reply, 400, "bad_request")

    @pytest.mark.parametrize("length", ["-1", "1e3", "abc"])
    def test_malformed_content_length_is_400(self, app: Driver, length: str) -> None:
        reply = app.raw("POST", "/wx/login", [("Content-Length", length)], b"{}")
        assert reply.status == 400 and reply.json()["error"] == "bad_request"

    def test_code_is_passed_to_wechat_verbatim(self, app: Driver, fake_wechat: FakeWeChat) -> None:
        code = "x&appid=other#frag %41 +/=?;"
        assert app.post("/wx/login", json={"code": code}).status == 401
        (call,) = fake_wechat.calls
        assert [value for name, value in call.query if name == "js_code"] == [code]
        assert [name for name, _ in call.query] == ["appid", "secret", "js_code", "grant_type"]

    # Non-ASCII, and what a lone surrogate's UTF-8 bytes in a header read as in Latin-1.
    @pytest.mark.parametrize("code", ["码" * 8, "abc\u00ffdef", "\xed\xa0\x80"])
    def test_a_code_no_platform_issues_is_400_without_wechat(
        self, app: Driver, fake_wechat: FakeWeChat, code: str
    ) -> None:
        assert_error(app.post("/wx/login", json={"code": code}), 400, "bad_request")
        header = code.encode("utf-8", "surrogatepass").decode("latin-1")
        assert_error(app.raw("GET", "/wx/login", [("X-WX-Code", header)]), 400, "bad_request")
        assert fake_wechat.calls == []

    def test_a_json_field_given_twice_is_400(self, app: Driver, fake_wechat: FakeWeChat) -> None:
        body = b'{"code": "abc", "code": "def"}'
        reply = app.raw("POST", "/wx/login", [("Content-Type", "application/json")], body)
        assert_error(reply, 400, "bad_request")
        assert "more than once" in reply.json()["message"]
        assert fake_wechat.calls == []
