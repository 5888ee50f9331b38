"""WxMiddleware through WebTest, against the fake WeChat server on loopback."""

from __future__ import annotations

import io
import json
import logging
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from wsgiref.util import setup_testing_defaults

import pytest
from webtest import TestApp

from wxmiddleware import MemoryStore, SQLiteStore, WxConfig, WxMiddleware
from wxmiddleware.errors import StoreUnavailable
from wxmiddleware.session import WxSession
from wxmiddleware.testing import FakeWeChat

Environ = Dict[str, Any]


class ClosingBody:
    """A response iterable that records whether the server closed it."""

    def __init__(self, chunks: List[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Any:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed = True


class InnerApp:
    """The wrapped app: answers with what the middleware put into the environ."""

    def __init__(self) -> None:
        self.calls = 0
        self.last_body: Optional[ClosingBody] = None

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.calls += 1
        session = environ.get("wxmiddleware.session")
        payload = {
            "path": environ["PATH_INFO"],
            "openid": environ.get("wxmiddleware.openid"),
            "unionid": environ.get("wxmiddleware.unionid"),
            "has_session": session is not None,
            "remote_user": environ.get("REMOTE_USER"),
            "session_key_matches": session is not None
            and environ.get("wxmiddleware.session_key") == session.session_key,
        }
        start_response("200 OK", [("Content-Type", "application/json")])
        self.last_body = ClosingBody([json.dumps(payload).encode()])
        return self.last_body


@pytest.fixture
def inner() -> InnerApp:
    return InnerApp()


@pytest.fixture
def make_client(fake_wechat: FakeWeChat, inner: InnerApp) -> Callable[..., TestApp]:
    def make(store: Any = None, **options: Any) -> TestApp:
        config = WxConfig(
            appid=fake_wechat.appid,
            secret=fake_wechat.secret,
            api_base=fake_wechat.url,
            public_paths=("/health",),
            optional_paths=("/feed",),
            connect_timeout=2.0,
            read_timeout=2.0,
        )
        middleware = WxMiddleware(
            inner, config=config, store=store if store is not None else MemoryStore(), **options
        )
        return TestApp(middleware)

    return make


@pytest.fixture
def client(make_client: Callable[..., TestApp]) -> TestApp:
    return make_client()


def login(client: TestApp, fake: FakeWeChat, user: str = "alice") -> str:
    response = client.post_json("/wx/login", {"code": fake.issue_code(user)})
    token: str = response.json["3rd_session"]
    return token


def assert_error(response: Any, status: int, error: str) -> None:
    assert response.status_int == status
    assert response.content_type == "application/json"
    assert response.json["error"] == error
    assert response.json["message"]


class TestLogin:
    def test_json_login(self, client: TestApp, fake_wechat: FakeWeChat) -> None:
        response = client.post_json("/wx/login", {"code": fake_wechat.issue_code()})
        assert response.status_int == 200
        assert set(response.json) == {"3rd_session", "expires_in"}
        assert len(response.json["3rd_session"]) >= 43
        assert response.json["expires_in"] == 7200
        assert response.headers["Cache-Control"] == "no-store"

    def test_form_login_and_alias(self, client: TestApp, fake_wechat: FakeWeChat) -> None:
        response = client.post("/wx/login", {"code": fake_wechat.issue_code()})
        assert response.status_int == 200
        response = client.post_json("/wx/login", {"wxCode": fake_wechat.issue_code()})
        assert response.status_int == 200

    def test_get_login_is_405_unless_allowed(
        self, make_client: Callable[..., TestApp], fake_wechat: FakeWeChat
    ) -> None:
        response = make_client().get("/wx/login", {"code": "x"}, status=405)
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["Allow"] == "POST"
        allowed = make_client(allow_get_login=True)
        assert allowed.get("/wx/login", {"code": fake_wechat.issue_code()}).status_int == 200

    def test_expose_openid_and_hook(
        self, make_client: Callable[..., TestApp], fake_wechat: FakeWeChat
    ) -> None:
        seen: List[str] = []

        def on_login(session: WxSession, environ: Environ) -> Dict[str, Any]:
            seen.append(environ["PATH_INFO"])
            return {"is_new": True}

        client = make_client(expose_openid=True, on_login=on_login)
        body = client.post_json("/wx/login", {"code": fake_wechat.issue_code("bob")}).json
        assert body["openid"] == fake_wechat.openid_for("bob")
        assert body["unionid"] == fake_wechat.unionid_for("bob")
        assert body["is_new"] is True and seen == ["/wx/login"]
        assert "session_key" not in body

    def test_retried_code_gives_the_same_session(
        self, client: TestApp, fake_wechat: FakeWeChat
    ) -> None:
        code = fake_wechat.issue_code()
        first = client.post_json("/wx/login", {"code": code}).json
        second = client.post_json("/wx/login", {"code": code}).json
        assert first["3rd_session"] == second["3rd_session"]
        assert fake_wechat.jscode2session_calls == 1

    def test_retried_code_after_logout_is_invalid(
        self, client: TestApp, fake_wechat: FakeWeChat
    ) -> None:
        code = fake_wechat.issue_code()
        token = client.post_json("/wx/login", {"code": code}).json["3rd_session"]
        client.post("/wx/logout", headers={"3rd-session": token}, status=204)
        response = client.post_json("/wx/login", {"code": code}, status=401)
        assert_error(response, 401, "invalid_code")

    def test_concurrent_duplicates_make_one_upstream_call(
        self, client: TestApp, fake_wechat: FakeWeChat
    ) -> None:
        fake_wechat.latency = 0.2
        code = fake_wechat.issue_code()
        tokens: List[str] = []

        def attempt() -> None:
            tokens.append(client.post_json("/wx/login", {"code": code}).json["3rd_session"])

        threads = [threading.Thread(target=attempt) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(tokens) == 8 and len(set(tokens)) == 1
        assert fake_wechat.jscode2session_calls == 1

    def test_several_sessions_per_user(self, client: TestApp, fake_wechat: FakeWeChat) -> None:
        first, second = login(client, fake_wechat), login(client, fake_wechat)
        assert first != second
        for token in (first, second):
            me = client.get("/api/me", headers={"3rd-session": token}).json
            assert me["openid"] == fake_wechat.openid_for("alice")


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
        client: TestApp,
        fake_wechat: FakeWeChat,
        errcode: int,
        status: int,
        error: str,
        calls: int,
    ) -> None:
        fake_wechat.inject("errcode", count=2, errcode=errcode)
        response = client.post_json("/wx/login", {"code": fake_wechat.issue_code()}, status=status)
        assert_error(response, status, error)
        assert response.json["errcode"] == errcode
        assert fake_wechat.jscode2session_calls == calls
        if status == 429:
            assert response.headers["Retry-After"] == "60"

    def test_busy_once_then_success(self, client: TestApp, fake_wechat: FakeWeChat) -> None:
        fake_wechat.inject("errcode", count=1, errcode=-1)
        response = client.post_json("/wx/login", {"code": fake_wechat.issue_code()})
        assert response.status_int == 200
        assert fake_wechat.jscode2session_calls == 2

    @pytest.mark.parametrize("fault", ["html", "http_status", "truncated", "no_openid", "huge"])
    def test_unusable_upstream_is_502(
        self, client: TestApp, fake_wechat: FakeWeChat, fault: str
    ) -> None:
        fake_wechat.inject(fault)
        response = client.post_json("/wx/login", {"code": fake_wechat.issue_code()}, status=502)
        assert response.json["error"].startswith("upstream")
        assert fake_wechat.jscode2session_calls == 1

    def test_read_timeout_is_504_and_not_retried(
        self, client: TestApp, fake_wechat: FakeWeChat
    ) -> None:
        fake_wechat.inject("slow", delay=4)
        response = client.post_json("/wx/login", {"code": fake_wechat.issue_code()}, status=504)
        assert_error(response, 504, "upstream_timeout")
        assert fake_wechat.jscode2session_calls == 1

    def test_slow_drip_is_504(self, client: TestApp, fake_wechat: FakeWeChat) -> None:
        fake_wechat.inject("drip", interval=0.2, length=200)
        response = client.post_json("/wx/login", {"code": fake_wechat.issue_code()}, status=504)
        assert_error(response, 504, "upstream_timeout")

    def test_unreachable_is_502(self, inner: InnerApp) -> None:
        config = WxConfig(appid="wxa", secret="s3cret-value", api_base="http://127.0.0.1:9")
        client = TestApp(WxMiddleware(inner, config=config, store=MemoryStore()))
        response = client.post_json("/wx/login", {"code": "abc"}, status=502)
        assert_error(response, 502, "upstream_unreachable")

    def test_store_down_is_503(
        self, make_client: Callable[..., TestApp], fake_wechat: FakeWeChat
    ) -> None:
        class DownStore(MemoryStore):
            def get(self, token: str, idle_ttl: int) -> Optional[WxSession]:
                raise StoreUnavailable()

            def claim_code(self, code_key: str, ttl: int) -> Optional[str]:
                raise StoreUnavailable()

        client = make_client(store=DownStore())
        response = client.post_json("/wx/login", {"code": fake_wechat.issue_code()}, status=503)
        assert_error(response, 503, "store_unavailable")
        response = client.get("/api/me", headers={"3rd-session": "A" * 43}, status=503)
        assert_error(response, 503, "store_unavailable")
        assert client.get("/health").status_int == 200


class TestBadLoginRequests:
    @pytest.mark.parametrize(
        ("body", "content_type", "status"),
        [
            (b"", "application/json", 400),
            (b"{", "application/json", 400),
            (b"[]", "application/json", 400),
            (b'{"code": null}', "application/json", 400),
            (b'{"code": 5}', "application/json", 400),
            (b"\xff", "application/json", 400),
            (b"code=abc", "text/plain", 415),
        ],
    )
    def test_bad_bodies(
        self, client: TestApp, inner: InnerApp, body: bytes, content_type: str, status: int
    ) -> None:
        response = client.post("/wx/login", body, content_type=content_type, status=status)
        assert response.content_type == "application/json"
        assert "error" in response.json
        assert inner.calls == 0

    def test_oversized_body_is_refused_before_reading(self, client: TestApp) -> None:
        class Unreadable(io.BytesIO):
            def read(self, *args: Any) -> bytes:
                raise AssertionError("the body was read")

        response = client.post(
            "/wx/login",
            extra_environ={"wsgi.input": Unreadable(), "CONTENT_LENGTH": "100000"},
            content_type="application/json",
            status=400,
        )
        assert_error(response, 400, "bad_request")

    @staticmethod
    def post_chunked(client: TestApp, body: bytes) -> Tuple[str, Dict[str, Any], io.BytesIO]:
        """POST a chunked body straight to the middleware (WebTest always sets a length)."""
        stream = io.BytesIO(body)
        environ: Environ = {}
        setup_testing_defaults(environ)
        environ.update(
            {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/wx/login",
                "CONTENT_TYPE": "application/json",
                "HTTP_TRANSFER_ENCODING": "chunked",
                "wsgi.input": stream,
                "wsgi.input_terminated": True,
            }
        )
        environ.pop("CONTENT_LENGTH", None)
        answer: Dict[str, Any] = {}

        def start_response(status: str, headers: Any) -> None:
            answer["status"] = status

        body_out = b"".join(client.app(environ, start_response))
        return answer["status"], json.loads(body_out), stream

    def test_oversized_chunked_body_is_refused(self, client: TestApp) -> None:
        status, body, stream = self.post_chunked(client, b'{"code": "' + b"x" * 100_000 + b'"}')
        assert status.startswith("400") and body["error"] == "bad_request"
        assert stream.tell() <= 4097

    def test_chunked_body_within_limit(self, client: TestApp, fake_wechat: FakeWeChat) -> None:
        body = json.dumps({"code": fake_wechat.issue_code()}).encode()
        status, answer, _ = self.post_chunked(client, body)
        assert status.startswith("200") and answer["3rd_session"]

    def test_code_is_passed_to_wechat_verbatim(
        self, client: TestApp, fake_wechat: FakeWeChat
    ) -> None:
        code = "x&appid=other#frag %41 码"
        client.post_json("/wx/login", {"code": code}, status=401)
        (call,) = fake_wechat.calls
        assert [value for name, value in call.query if name == "js_code"] == [code]
        assert [name for name, _ in call.query] == ["appid", "secret", "js_code", "grant_type"]


class TestSessions:
    def test_protected_path_needs_a_session(self, client: TestApp, inner: InnerApp) -> None:
        response = client.get("/api/me", status=401)
        assert_error(response, 401, "invalid_session")
        assert "3rd-session" in response.json["message"]
        assert response.headers["WWW-Authenticate"].startswith("WxSession")
        assert inner.calls == 0

    @pytest.mark.parametrize("header", ["3rd-session", "3rd_session", "X-WX-Skey", "3RD-SESSION"])
    def test_token_headers(self, client: TestApp, fake_wechat: FakeWeChat, header: str) -> None:
        token = login(client, fake_wechat)
        me = client.get("/api/me", headers={header: token}).json
        assert me["openid"] == fake_wechat.openid_for("alice")
        assert me["unionid"] == fake_wechat.unionid_for("alice")
        assert me["remote_user"] == me["openid"]
        assert me["session_key_matches"] is True

    def test_conflicting_headers_are_400(self, client: TestApp, fake_wechat: FakeWeChat) -> None:
        token = login(client, fake_wechat)
        response = client.get(
            "/api/me", headers={"3rd-session": token, "X-WX-Skey": "B" * 43}, status=400
        )
        assert_error(response, 400, "bad_request")
        agreeing = client.get("/api/me", headers={"3rd-session": token, "X-WX-Skey": token})
        assert agreeing.status_int == 200

    @pytest.mark.parametrize("value", ["", "A" * 43, "short", "has space", "x" * 500])
    def test_unknown_or_malformed_tokens_are_401(
        self, client: TestApp, inner: InnerApp, value: str
    ) -> None:
        response = client.get("/api/me", headers={"3rd-session": value}, status=401)
        assert_error(response, 401, "invalid_session")
        assert inner.calls == 0

    def test_truncated_token_is_401(self, client: TestApp, fake_wechat: FakeWeChat) -> None:
        token = login(client, fake_wechat)
        client.get("/api/me", headers={"3rd-session": token[:-1]}, status=401)

    def test_logout_ends_one_session_only(self, client: TestApp, fake_wechat: FakeWeChat) -> None:
        first, second = login(client, fake_wechat), login(client, fake_wechat)
        response = client.post("/wx/logout", headers={"3rd-session": first}, status=204)
        assert response.body == b""
        client.get("/api/me", headers={"3rd-session": first}, status=401)
        assert client.get("/api/me", headers={"3rd-session": second}).status_int == 200
        client.post("/wx/logout", headers={"3rd-session": first}, status=204)

    def test_logout_errors(self, client: TestApp) -> None:
        assert_error(client.post("/wx/logout", status=401), 401, "invalid_session")
        response = client.get("/wx/logout", status=405)
        assert response.headers["Allow"] == "POST"

    def test_public_and_optional_paths(
        self, client: TestApp, fake_wechat: FakeWeChat, inner: InnerApp
    ) -> None:
        assert client.get("/health").json["has_session"] is False
        assert client.get("/feed").json["has_session"] is False
        assert client.get("/feed", headers={"3rd-session": "A" * 43}).json["has_session"] is False
        token = login(client, fake_wechat)
        feed = client.get("/feed", headers={"3rd-session": token}).json
        assert feed["openid"] == fake_wechat.openid_for("alice")
        client.get("/health/../api/me", status=401)

    def test_app_iterable_is_returned_unchanged(
        self, client: TestApp, fake_wechat: FakeWeChat, inner: InnerApp
    ) -> None:
        token = login(client, fake_wechat)
        client.get("/api/me", headers={"3rd-session": token})
        assert inner.last_body is not None and inner.last_body.closed

    def test_sqlite_store(
        self, make_client: Callable[..., TestApp], fake_wechat: FakeWeChat, tmp_path: Any
    ) -> None:
        client = make_client(store=SQLiteStore(tmp_path / "sessions.sqlite3"))
        token = login(client, fake_wechat)
        assert client.get("/api/me", headers={"3rd-session": token}).json["openid"]


def test_nothing_secret_is_answered_or_logged(
    make_client: Callable[..., TestApp],
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    session_keys: List[str] = []

    def remember_key(session: WxSession, environ: Environ) -> None:
        session_keys.append(session.session_key)

    client = make_client(on_login=remember_key)
    answers: List[str] = []
    token = login(client, fake_wechat)
    for fault, params in [
        ("errcode", {"errcode": 40125}),
        ("errcode", {"errcode": -1}),
        ("errcode", {"errcode": 12345, "errmsg": "odd"}),
        ("html", {}),
        ("slow", {"delay": 4}),
        ("http_status", {"status": 500}),
        ("close", {}),
    ]:
        fake_wechat.inject(fault, count=2, **params)
        response = client.post_json(
            "/wx/login", {"code": fake_wechat.issue_code()}, expect_errors=True
        )
        assert response.status_int >= 500
        answers.append(response.text + str(response.headers))
    response = client.get("/api/me", headers={"3rd-session": token})
    answers.append(response.text + str(response.headers))
    client.post("/wx/logout", headers={"3rd-session": token}, status=204)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "login failed" in logged
    assert "WeChat GET /sns/jscode2session: HTTP 200" in logged  # the client's record
    assert session_keys
    for text in ["\n".join(answers), logged]:
        assert fake_wechat.secret not in text
        assert "js_code" not in text and "secret=" not in text
        assert token not in text
        for key in session_keys:
            assert key not in text
