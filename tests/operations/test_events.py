"""Events (issue 21): the observer interface, on_logout/on_reject, structured log records.

Every test runs through both adapters; the hooks are plain functions under WSGI and
coroutine functions under ASGI (one hook shape, awaited when it is one).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, List, Tuple

import pytest

from wxmiddleware import WxSession
from wxmiddleware.session import short_hash, token_key
from wxmiddleware.testing import FakeWeChat

from ..middleware.drivers import Driver, path_of
from ..middleware.stubs import ASGI, down_store
from .support import RecordingObserver

SESSION_KEY = "c2Vzc2lvbi1rZXktb2YtdGhlLXRlc3Q="


def hook(adapter: str, calls: List[Tuple[Any, str]]) -> Callable[..., Any]:
    """A hook recording ``(subject, path)``: a coroutine function under ASGI."""
    if adapter == ASGI:

        async def async_hook(subject: Any, request: Any) -> None:
            calls.append((subject, path_of(request)))

        return async_hook

    def sync_hook(subject: Any, request: Any) -> None:
        calls.append((subject, path_of(request)))

    return sync_hook


class TestRejections:
    def test_each_reason_reaches_the_observer_the_hook_and_the_log(
        self,
        make_app: Callable[..., Driver],
        fake_wechat: FakeWeChat,
        adapter: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        observer = RecordingObserver()
        rejected: List[Tuple[Any, str]] = []
        app = make_app(observers=[observer], on_reject=hook(adapter, rejected))
        unknown = "A" * 43
        with caplog.at_level(logging.DEBUG, "wxmiddleware"):
            assert app.get("/api/me").status == 401
            assert app.me("not a token!").status == 401
            assert app.me(unknown).status == 401
            assert app.post("/wx/login/", json={"code": "x"}).status == 404
            assert app.post("/wx/logout").status == 401
            assert app.request("PUT", "/wx/login").status == 405
        reasons = ["missing", "invalid", "expired", "bad_request", "missing", "bad_request"]
        assert [reason for reason, _ in rejected] == reasons
        assert [path for _, path in rejected][:2] == ["/api/me", "/api/me"]
        assert observer.of("rejected") == [
            ("missing", 401),
            ("invalid", 401),
            ("expired", 401),
            ("bad_request", 404),
            ("missing", 401),
            ("bad_request", 405),
        ]
        records = [r for r in caplog.records if getattr(r, "event", None) == "reject"]
        assert [r.reason for r in records] == reasons  # type: ignore[attr-defined]
        assert [r.status for r in records][:3] == [401, 401, 401]  # type: ignore[attr-defined]
        # The session is named by its short hash, never the token.
        assert records[2].session_hash == short_hash(token_key(unknown))  # type: ignore[attr-defined]
        assert unknown not in caplog.text

    def test_a_down_store_is_store_down(
        self, make_app: Callable[..., Driver], adapter: str
    ) -> None:
        observer = RecordingObserver()
        rejected: List[Tuple[Any, str]] = []
        app = make_app(
            store=down_store(adapter), observers=[observer], on_reject=hook(adapter, rejected)
        )
        assert app.me("B" * 43).status == 503
        assert [reason for reason, _ in rejected] == ["store_down"]
        assert observer.of("rejected") == [("store_down", 503)]
        (lookup,) = [a for a in observer.activities if a.kind == "store"]
        assert lookup.labels == ("down", "get") and lookup.error is not None

    def test_a_failing_reject_hook_changes_no_answer(
        self, make_app: Callable[..., Driver], caplog: pytest.LogCaptureFixture
    ) -> None:
        def on_reject(reason: str, request: Any) -> None:
            raise RuntimeError("hook bug")

        app = make_app(on_reject=on_reject)
        assert app.get("/api/me").status == 401
        assert "on_reject hook failed: RuntimeError" in caplog.text


class TestRequests:
    def test_outcomes_of_requests_that_pass(
        self, make_app: Callable[..., Driver], fake_wechat: FakeWeChat
    ) -> None:
        observer = RecordingObserver()
        app = make_app(observers=[observer], cors_origins=("https://h5.example.com",))
        token = app.login(fake_wechat)
        del observer.events[:]
        assert app.me(token).status == 200
        assert app.get("/health").status == 200
        assert app.get("/feed").status == 200
        assert app.me(token, path="/feed").status == 200
        preflight = [
            ("Origin", "https://h5.example.com"),
            ("Access-Control-Request-Method", "POST"),
        ]
        assert app.request("OPTIONS", "/api/me", headers=preflight).status == 200
        assert app.request("OPTIONS", "/wx/login", headers=preflight).status in (200, 204)
        assert observer.of("request") == [
            ("authenticated",),
            ("public",),
            ("anonymous",),
            ("authenticated",),
            ("preflight",),
            ("preflight",),
        ]
        assert observer.of("rejected") == []

    def test_without_observers_nothing_is_wrapped(self, make_app: Callable[..., Driver]) -> None:
        app = make_app()
        assert app.middleware.observer is None
        assert app.middleware._pipeline._lookup_class.__name__ == "SessionLookup"


class TestLoginsAndLogouts:
    @pytest.fixture(autouse=True)
    def known_session_key(self, fake_wechat: FakeWeChat) -> None:
        fake_wechat.session_key_factory = lambda: SESSION_KEY

    def test_login_outcomes_by_errcode_family(
        self, make_app: Callable[..., Driver], fake_wechat: FakeWeChat
    ) -> None:
        observer = RecordingObserver()
        app = make_app(observers=[observer])
        code = fake_wechat.issue_code()
        assert app.post("/wx/login", json={"code": code}).status == 200
        assert app.post("/wx/login", json={"code": code}).status == 200  # a client's retry
        expected = [("success", None), ("replay", None)]
        for errcode, status, outcome in [
            (40029, 401, "invalid_code"),
            (40163, 401, "invalid_code"),
            (45011, 429, "rate_limited"),
            (40226, 403, "user_blocked"),
            (40013, 502, "upstream_error"),
        ]:
            fake_wechat.inject("errcode", errcode=errcode)
            reply = app.post("/wx/login", json={"code": fake_wechat.issue_code()})
            assert reply.status == status
            expected.append((outcome, errcode))
        fake_wechat.inject("errcode", 2, errcode=-1)
        assert app.post("/wx/login", json={"code": fake_wechat.issue_code()}).status == 503
        expected.append(("upstream_busy", -1))
        fake_wechat.inject("http_status", status=500)
        assert app.post("/wx/login", json={"code": fake_wechat.issue_code()}).status == 502
        expected.append(("upstream_error", None))
        assert app.post("/wx/login", json={}).status == 400
        expected.append(("bad_request", None))
        assert observer.of("login") == expected
        logins = [a for a in observer.activities if a.kind == "login"]
        assert [a.ended for a in logins] == [1] * len(expected)
        assert [a.attributes["outcome"] for a in logins] == [o for o, _ in expected]
        calls = [a for a in observer.activities if a.kind == "http"]
        assert {a.labels for a in calls} == {("/sns/jscode2session", "GET")}
        assert calls[0].attributes == {"status": 200, "errcode": 0}
        refused = [a.attributes for a in calls if a.attributes.get("errcode") == 40029]
        assert refused and refused[0]["status"] == 200 and refused[0]["rid"]
        assert calls[-1].attributes == {"status": 500}
        ops = {a.labels[1] for a in observer.activities if a.kind == "store"}
        assert {"claim_code", "save"} <= ops
        assert all(a.ended == 1 for a in observer.activities)

    def test_logout_hook_gets_the_ended_session(
        self, make_app: Callable[..., Driver], fake_wechat: FakeWeChat, adapter: str
    ) -> None:
        observer = RecordingObserver()
        ended: List[Tuple[Any, str]] = []
        app = make_app(observers=[observer], on_logout=hook(adapter, ended))
        token = app.login(fake_wechat, "carol")
        headers = [("3rd-session", token)]
        assert app.post("/wx/logout", headers=headers).status == 204
        assert app.post("/wx/logout", headers=headers).status == 204
        ((session, path),) = ended
        assert isinstance(session, WxSession) and path == "/wx/logout"
        assert session.openid == fake_wechat.openid_for("carol")
        assert observer.of("logout") == [(True,), (False,)]

    def test_log_records_carry_structured_fields_and_no_secret(
        self,
        make_app: Callable[..., Driver],
        fake_wechat: FakeWeChat,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        observer = RecordingObserver()
        app = make_app(observers=[observer])
        code = fake_wechat.issue_code()
        with caplog.at_level(logging.DEBUG, "wxmiddleware"):
            token = app.post("/wx/login", json={"code": code}).json()["3rd_session"]
            fake_wechat.inject("errcode", errcode=40029)
            bad_code = fake_wechat.issue_code()
            app.post("/wx/login", json={"code": bad_code})
            app.post("/wx/logout", headers=[("3rd-session", token)])
        login = next(r for r in caplog.records if getattr(r, "event", None) == "login")
        assert login.session_hash == short_hash(token_key(token))  # type: ignore[attr-defined]
        assert login.outcome == "success"  # type: ignore[attr-defined]
        failed = next(
            r for r in caplog.records if getattr(r, "event", None) == "login" and r is not login
        )
        assert failed.errcode == 40029 and failed.error == "invalid_code"  # type: ignore[attr-defined]
        logout = next(r for r in caplog.records if getattr(r, "event", None) == "logout")
        assert logout.session_hash == short_hash(token_key(token))  # type: ignore[attr-defined]
        seen = caplog.text + " ".join(repr(vars(r)) for r in caplog.records)
        seen += observer.everything()
        for secret in (token, code, bad_code, SESSION_KEY, fake_wechat.secret):
            assert secret not in seen
