"""WxASGIMiddleware through httpx's ASGI transport, against the fake WeChat server on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Dict, Iterable, List, Optional, Tuple

import httpx
import pytest

from wxmiddleware import AsyncMemoryStore, AsyncSQLiteStore, WxASGIMiddleware, WxConfig
from wxmiddleware.asgi import WxUser
from wxmiddleware.errors import StoreUnavailable
from wxmiddleware.session import WxSession
from wxmiddleware.testing import FakeWeChat

Scope = Dict[str, Any]
Message = Dict[str, Any]

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class InnerApp:
    """The wrapped app: answers with what the middleware put into the scope; echoes websockets."""

    def __init__(self) -> None:
        self.scopes: List[Scope] = []

    @property
    def calls(self) -> int:
        return len(self.scopes)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # Starlette's TestClient runs one
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        self.scopes.append(scope)
        if scope["type"] == "websocket":
            await self.echo(receive, send)
            return
        session = scope.get("wxmiddleware.session")
        user = scope.get("user")
        payload = {
            "path": scope["path"],
            "openid": scope.get("wxmiddleware.openid"),
            "unionid": scope.get("wxmiddleware.unionid"),
            "has_session": session is not None,
            "session_key_matches": session is not None
            and scope.get("wxmiddleware.session_key") == session.session_key,
            "identity": None if user is None else user.identity,
            "is_authenticated": None if user is None else user.is_authenticated,
            "scopes": scope["auth"].scopes if "auth" in scope else None,
        }
        body = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def echo(receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message["text"]})


@pytest.fixture
def inner() -> InnerApp:
    return InnerApp()


@pytest.fixture
def make_middleware(fake_wechat: FakeWeChat, inner: InnerApp) -> Callable[..., WxASGIMiddleware]:
    def make(store: Any = None, **options: Any) -> WxASGIMiddleware:
        config = WxConfig(
            appid=fake_wechat.appid,
            secret=fake_wechat.secret,
            api_base=fake_wechat.url,
            public_paths=("/health",),
            optional_paths=("/feed",),
            connect_timeout=2.0,
            read_timeout=2.0,
        )
        store = store if store is not None else AsyncMemoryStore()
        return WxASGIMiddleware(inner, config=config, store=store, **options)

    return make


@pytest.fixture
async def make_client(
    make_middleware: Callable[..., WxASGIMiddleware],
) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    clients: List[httpx.AsyncClient] = []

    def make(store: Any = None, **options: Any) -> httpx.AsyncClient:
        middleware = make_middleware(store, **options)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=middleware), base_url="http://testserver"
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(make_client: Callable[..., httpx.AsyncClient]) -> httpx.AsyncClient:
    return make_client()


async def login(client: httpx.AsyncClient, fake: FakeWeChat, user: str = "alice") -> str:
    response = await client.post("/wx/login", json={"code": fake.issue_code(user)})
    assert response.status_code == 200, response.text
    token: str = response.json()["3rd_session"]
    return token


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == error
    assert response.json()["message"]


def http_scope(
    path: str = "/wx/login",
    method: str = "POST",
    headers: Iterable[Tuple[bytes, bytes]] = ((b"content-type", b"application/json"),),
) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": list(headers),
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def call(
    app: WxASGIMiddleware, scope: Scope, receive: Callable[[], Any]
) -> Tuple[List[Message], Optional[Any]]:
    """Call the middleware straight; return what it sent and its JSON body, if any."""
    sent: List[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    return sent, json.loads(b"".join(bodies)) if bodies and bodies[0] else None


def body_messages(*chunks: bytes) -> Callable[[], Any]:
    """A receive callable that hands out ``chunks`` as one streamed request body."""
    queue = list(chunks)

    async def receive() -> Message:
        chunk = queue.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(queue)}

    return receive


class TestLogin:
    async def test_json_login(self, client: httpx.AsyncClient, fake_wechat: FakeWeChat) -> None:
        response = await client.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert response.status_code == 200
        assert set(response.json()) == {"3rd_session", "expires_in"}
        assert len(response.json()["3rd_session"]) >= 43
        assert response.json()["expires_in"] == 7200
        assert response.headers["cache-control"] == "no-store"

    async def test_form_login_and_alias(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat
    ) -> None:
        response = await client.post("/wx/login", data={"code": fake_wechat.issue_code()})
        assert response.status_code == 200
        response = await client.post("/wx/login", json={"wxCode": fake_wechat.issue_code()})
        assert response.status_code == 200

    async def test_get_login_is_405_unless_allowed(
        self, make_client: Callable[..., httpx.AsyncClient], fake_wechat: FakeWeChat
    ) -> None:
        response = await make_client().get("/wx/login", params={"code": "x"})
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"
        allowed = make_client(allow_get_login=True)
        response = await allowed.get("/wx/login", params={"code": fake_wechat.issue_code()})
        assert response.status_code == 200

    @pytest.mark.parametrize("asynchronous", [False, True])
    async def test_expose_openid_and_hook(
        self,
        make_client: Callable[..., httpx.AsyncClient],
        fake_wechat: FakeWeChat,
        asynchronous: bool,
    ) -> None:
        seen: List[str] = []

        def on_login(session: WxSession, scope: Scope) -> Dict[str, Any]:
            seen.append(scope["path"])
            return {"is_new": True}

        async def on_login_async(session: WxSession, scope: Scope) -> Dict[str, Any]:
            return on_login(session, scope)

        client = make_client(
            expose_openid=True, on_login=on_login_async if asynchronous else on_login
        )
        response = await client.post("/wx/login", json={"code": fake_wechat.issue_code("bob")})
        body = response.json()
        assert body["openid"] == fake_wechat.openid_for("bob")
        assert body["unionid"] == fake_wechat.unionid_for("bob")
        assert body["is_new"] is True and seen == ["/wx/login"]
        assert "session_key" not in body

    async def test_retried_code_gives_the_same_session(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat
    ) -> None:
        code = fake_wechat.issue_code()
        first = (await client.post("/wx/login", json={"code": code})).json()
        second = (await client.post("/wx/login", json={"code": code})).json()
        assert first["3rd_session"] == second["3rd_session"]
        assert fake_wechat.jscode2session_calls == 1

    async def test_retried_code_after_logout_is_invalid(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat
    ) -> None:
        code = fake_wechat.issue_code()
        token = (await client.post("/wx/login", json={"code": code})).json()["3rd_session"]
        logout = await client.post("/wx/logout", headers={"3rd-session": token})
        assert logout.status_code == 204
        response = await client.post("/wx/login", json={"code": code})
        assert_error(response, 401, "invalid_code")

    async def test_concurrent_duplicates_make_one_upstream_call(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat
    ) -> None:
        fake_wechat.latency = 0.2
        code = fake_wechat.issue_code()
        responses = await asyncio.gather(
            *(client.post("/wx/login", json={"code": code}) for _ in range(8))
        )
        tokens = {response.json()["3rd_session"] for response in responses}
        assert len(tokens) == 1
        assert fake_wechat.jscode2session_calls == 1

    async def test_several_sessions_per_user(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat
    ) -> None:
        first, second = await login(client, fake_wechat), await login(client, fake_wechat)
        assert first != second
        for token in (first, second):
            me = (await client.get("/api/me", headers={"3rd-session": token})).json()
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
    async def test_errcodes(
        self,
        client: httpx.AsyncClient,
        fake_wechat: FakeWeChat,
        errcode: int,
        status: int,
        error: str,
        calls: int,
    ) -> None:
        fake_wechat.inject("errcode", count=2, errcode=errcode)
        response = await client.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert_error(response, status, error)
        assert response.json()["errcode"] == errcode
        assert fake_wechat.jscode2session_calls == calls
        if status == 429:
            assert response.headers["retry-after"] == "60"

    async def test_busy_once_then_success(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat
    ) -> None:
        fake_wechat.inject("errcode", count=1, errcode=-1)
        response = await client.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert response.status_code == 200
        assert fake_wechat.jscode2session_calls == 2

    @pytest.mark.parametrize(
        "fault", ["html", "http_status", "truncated", "no_openid", "huge", "invalid_json"]
    )
    async def test_unusable_upstream_is_502(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat, fault: str
    ) -> None:
        fake_wechat.inject(fault)
        response = await client.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert response.status_code == 502
        assert response.json()["error"].startswith("upstream")
        assert fake_wechat.jscode2session_calls == 1

    async def test_closed_connection_is_502(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat
    ) -> None:
        fake_wechat.inject("close", count=2)
        response = await client.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert_error(response, 502, "upstream_error")

    async def test_read_timeout_is_504_and_not_retried(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat
    ) -> None:
        fake_wechat.inject("slow", delay=4)
        response = await client.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert_error(response, 504, "upstream_timeout")
        assert fake_wechat.jscode2session_calls == 1

    async def test_slow_drip_is_504(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat
    ) -> None:
        fake_wechat.inject("drip", interval=0.2, length=200)
        response = await client.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert_error(response, 504, "upstream_timeout")

    async def test_unreachable_is_502(self, inner: InnerApp) -> None:
        config = WxConfig(appid="wxa", secret="s3cret-value", api_base="http://127.0.0.1:9")
        middleware = WxASGIMiddleware(inner, config=config, store=AsyncMemoryStore())
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post("/wx/login", json={"code": "abc"})
        assert_error(response, 502, "upstream_unreachable")

    async def test_store_down_is_503(
        self, make_client: Callable[..., httpx.AsyncClient], fake_wechat: FakeWeChat
    ) -> None:
        class DownStore(AsyncMemoryStore):
            async def get(self, token: str, idle_ttl: int) -> Optional[WxSession]:
                raise StoreUnavailable()

            async def claim_code(self, code_key: str, ttl: int) -> Optional[str]:
                raise StoreUnavailable()

        client = make_client(store=DownStore())
        response = await client.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert_error(response, 503, "store_unavailable")
        response = await client.get("/api/me", headers={"3rd-session": "A" * 43})
        assert_error(response, 503, "store_unavailable")
        assert (await client.get("/health")).status_code == 200

    async def test_a_fault_of_ours_is_500_json_without_traceback(
        self,
        make_client: Callable[..., httpx.AsyncClient],
        fake_wechat: FakeWeChat,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        def broken_hook(session: WxSession, scope: Scope) -> None:
            raise RuntimeError("a bug")

        client = make_client(on_login=broken_hook)
        response = await client.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert_error(response, 500, "internal_error")
        assert "a bug" not in response.text
        [record] = [r for r in caplog.records if "internal error" in r.getMessage()]
        assert record.getMessage() == "internal error: RuntimeError"
        assert record.exc_info is None

    async def test_errors_of_the_app_are_not_ours(
        self, make_middleware: Callable[..., WxASGIMiddleware], fake_wechat: FakeWeChat
    ) -> None:
        async def failing_app(scope: Scope, receive: Any, send: Any) -> None:
            raise LookupError("the app's own bug")

        middleware = make_middleware()
        middleware.app = failing_app
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            with pytest.raises(LookupError):
                await client.get("/health")


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
    async def test_bad_bodies(
        self,
        client: httpx.AsyncClient,
        inner: InnerApp,
        body: bytes,
        content_type: str,
        status: int,
    ) -> None:
        response = await client.post(
            "/wx/login", content=body, headers={"content-type": content_type}
        )
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert "error" in response.json()
        assert inner.calls == 0

    async def test_oversized_body_is_refused_before_reading(
        self, make_middleware: Callable[..., WxASGIMiddleware]
    ) -> None:
        async def unreadable() -> Message:
            raise AssertionError("the body was read")

        scope = http_scope(
            headers=[(b"content-type", b"application/json"), (b"content-length", b"100000")]
        )
        sent, body = await call(make_middleware(), scope, unreadable)
        assert sent[0]["status"] == 400 and body["error"] == "bad_request"

    @pytest.mark.parametrize("length", [b"-1", b"1e3", b"abc"])
    async def test_malformed_content_length_is_400(
        self, make_middleware: Callable[..., WxASGIMiddleware], length: bytes
    ) -> None:
        scope = http_scope(headers=[(b"content-length", length)])
        sent, body = await call(make_middleware(), scope, body_messages(b"{}"))
        assert sent[0]["status"] == 400 and body["error"] == "bad_request"

    async def test_oversized_chunked_body_stops_being_read(
        self, make_middleware: Callable[..., WxASGIMiddleware]
    ) -> None:
        reads = 0

        async def endless() -> Message:
            nonlocal reads
            reads += 1
            return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

        sent, body = await call(make_middleware(), http_scope(), endless)
        assert sent[0]["status"] == 400 and body["error"] == "bad_request"
        assert reads == 5  # 4096 bytes allowed: the fifth chunk passes the limit

    async def test_chunked_body_within_limit(
        self, make_middleware: Callable[..., WxASGIMiddleware], fake_wechat: FakeWeChat
    ) -> None:
        body = json.dumps({"code": fake_wechat.issue_code()}).encode()
        chunks = [body[:5], b"", body[5:20], body[20:]]
        sent, answer = await call(make_middleware(), http_scope(), body_messages(*chunks))
        assert sent[0]["status"] == 200 and answer["3rd_session"]

    async def test_disconnect_mid_body_ends_quietly(
        self,
        make_middleware: Callable[..., WxASGIMiddleware],
        inner: InnerApp,
        fake_wechat: FakeWeChat,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        messages = [
            {"type": "http.request", "body": b'{"code": "', "more_body": True},
            {"type": "http.disconnect"},
        ]

        async def receive() -> Message:
            return messages.pop(0)

        sent, _ = await call(make_middleware(), http_scope(), receive)
        assert sent == []
        assert inner.calls == 0
        assert fake_wechat.jscode2session_calls == 0
        assert all(record.levelno <= logging.DEBUG for record in caplog.records)

    async def test_code_is_passed_to_wechat_verbatim(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat
    ) -> None:
        code = "x&appid=other#frag %41 码"
        response = await client.post("/wx/login", json={"code": code})
        assert response.status_code == 401
        (recorded,) = fake_wechat.calls
        assert [value for name, value in recorded.query if name == "js_code"] == [code]
        assert [name for name, _ in recorded.query] == ["appid", "secret", "js_code", "grant_type"]


class TestSessions:
    async def test_protected_path_needs_a_session(
        self, client: httpx.AsyncClient, inner: InnerApp
    ) -> None:
        response = await client.get("/api/me")
        assert_error(response, 401, "invalid_session")
        assert "3rd-session" in response.json()["message"]
        assert response.headers["www-authenticate"].startswith("WxSession")
        assert inner.calls == 0

    @pytest.mark.parametrize("header", ["3rd-session", "3rd_session", "X-WX-Skey", "x_wx_skey"])
    async def test_token_headers(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat, header: str
    ) -> None:
        token = await login(client, fake_wechat)
        me = (await client.get("/api/me", headers={header: token})).json()
        assert me["openid"] == fake_wechat.openid_for("alice")
        assert me["unionid"] == fake_wechat.unionid_for("alice")
        assert me["session_key_matches"] is True
        assert me["identity"] == me["openid"] and me["is_authenticated"] is True
        assert me["scopes"] == ["authenticated"]

    async def test_header_names_are_compared_case_insensitively(
        self,
        make_middleware: Callable[..., WxASGIMiddleware],
        fake_wechat: FakeWeChat,
        inner: InnerApp,
    ) -> None:
        # Servers lower-case header names, but the ASGI spec does not force every one to.
        middleware = make_middleware()
        body = json.dumps({"code": fake_wechat.issue_code()}).encode()
        _, answer = await call(middleware, http_scope(), body_messages(body))
        scope = http_scope("/api/me", "GET", [(b"3RD_SESSION", answer["3rd_session"].encode())])
        sent, _ = await call(middleware, scope, body_messages(b""))
        assert sent[0]["status"] == 200
        assert inner.scopes[-1]["wxmiddleware.openid"] == fake_wechat.openid_for("alice")

    async def test_conflicting_headers_are_400(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat
    ) -> None:
        token = await login(client, fake_wechat)
        response = await client.get(
            "/api/me", headers={"3rd-session": token, "X-WX-Skey": "B" * 43}
        )
        assert_error(response, 400, "bad_request")
        response = await client.get(
            "/api/me", headers=[("3rd-session", token), ("3rd_session", "B" * 43)]
        )
        assert_error(response, 400, "bad_request")
        agreeing = await client.get("/api/me", headers={"3rd-session": token, "X-WX-Skey": token})
        assert agreeing.status_code == 200

    @pytest.mark.parametrize("value", ["", "A" * 43, "short", "has space", "x" * 500, "tök"])
    async def test_unknown_or_malformed_tokens_are_401(
        self, client: httpx.AsyncClient, inner: InnerApp, value: str
    ) -> None:
        response = await client.get("/api/me", headers={"3rd-session": value.encode()})
        assert_error(response, 401, "invalid_session")
        assert inner.calls == 0

    async def test_truncated_token_is_401(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat
    ) -> None:
        token = await login(client, fake_wechat)
        response = await client.get("/api/me", headers={"3rd-session": token[:-1]})
        assert_error(response, 401, "invalid_session")

    async def test_logout_ends_one_session_only(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat
    ) -> None:
        first, second = await login(client, fake_wechat), await login(client, fake_wechat)
        response = await client.post("/wx/logout", headers={"3rd-session": first})
        assert response.status_code == 204 and response.content == b""
        response = await client.get("/api/me", headers={"3rd-session": first})
        assert response.status_code == 401
        response = await client.get("/api/me", headers={"3rd-session": second})
        assert response.status_code == 200
        response = await client.post("/wx/logout", headers={"3rd-session": first})
        assert response.status_code == 204

    async def test_logout_errors(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.post("/wx/logout"), 401, "invalid_session")
        response = await client.get("/wx/logout")
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"

    async def test_public_and_optional_paths(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat, inner: InnerApp
    ) -> None:
        health = (await client.get("/health")).json()
        assert health["has_session"] is False and health["identity"] is None
        assert "wxmiddleware.session" not in inner.scopes[-1]  # a public path is untouched
        feed = (await client.get("/feed")).json()
        assert feed["has_session"] is False
        assert feed["is_authenticated"] is False and feed["scopes"] == []
        assert isinstance(inner.scopes[-1]["user"], WxUser)
        feed = (await client.get("/feed", headers={"3rd-session": "A" * 43})).json()
        assert feed["has_session"] is False
        token = await login(client, fake_wechat)
        feed = (await client.get("/feed", headers={"3rd-session": token})).json()
        assert feed["openid"] == fake_wechat.openid_for("alice")
        assert feed["scopes"] == ["authenticated"]
        assert (await client.get("/health/../api/me")).status_code == 401
        assert (await client.get("/health%2F..%2Fapi")).status_code == 401

    async def test_paths_below_root_path(
        self, make_middleware: Callable[..., WxASGIMiddleware], fake_wechat: FakeWeChat
    ) -> None:
        # uvicorn --root-path /app puts the prefix in "path" too; routing strips it.
        transport = httpx.ASGITransport(app=make_middleware(), root_path="/app")
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/app/health")).status_code == 200
            response = await client.post("/app/wx/login", json={"code": fake_wechat.issue_code()})
            assert response.status_code == 200

    async def test_scope_is_copied(
        self,
        make_middleware: Callable[..., WxASGIMiddleware],
        fake_wechat: FakeWeChat,
        inner: InnerApp,
    ) -> None:
        middleware = make_middleware()
        body = json.dumps({"code": fake_wechat.issue_code()}).encode()
        _, answer = await call(middleware, http_scope(), body_messages(body))
        scope = http_scope("/api/me", "GET", [(b"3rd-session", answer["3rd_session"].encode())])
        before = dict(scope)
        await call(middleware, scope, body_messages(b""))
        assert scope == before
        assert inner.scopes[-1] is not scope
        assert inner.scopes[-1]["wxmiddleware.openid"] == fake_wechat.openid_for("alice")

    async def test_sqlite_store(
        self,
        make_client: Callable[..., httpx.AsyncClient],
        fake_wechat: FakeWeChat,
        tmp_path: Path,
    ) -> None:
        store = AsyncSQLiteStore(tmp_path / "sessions.sqlite3")
        client = make_client(store=store)
        token = await login(client, fake_wechat)
        me = await client.get("/api/me", headers={"3rd-session": token})
        assert me.json()["openid"] == fake_wechat.openid_for("alice")
        await store.close()


class TestOtherScopes:
    async def test_lifespan_passes_through(
        self, make_middleware: Callable[..., WxASGIMiddleware]
    ) -> None:
        events: List[str] = []
        seen: List[Scope] = []

        async def app(scope: Scope, receive: Any, send: Any) -> None:
            seen.append(scope)
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return

        middleware = make_middleware()
        middleware.app = app
        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: List[Message] = []

        async def receive() -> Message:
            return inbox.pop(0)

        async def send(message: Message) -> None:
            sent.append(message)

        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        await middleware(scope, receive, send)
        assert events == ["lifespan.startup", "lifespan.shutdown"]
        assert [m["type"] for m in sent] == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        assert seen == [scope] and seen[0] is scope
        assert scope == {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

    async def test_unknown_scope_type_passes_through(
        self, make_middleware: Callable[..., WxASGIMiddleware], inner: InnerApp
    ) -> None:
        scope: Scope = {"type": "webtransport", "path": "/api/me", "headers": []}

        async def never() -> Message:
            raise AssertionError("the middleware read a message")

        sent, _ = await call(make_middleware(), scope, never)
        assert inner.scopes == [scope] and inner.scopes[0] is scope
        assert sent[0]["status"] == 200


class TestWebsockets:
    """Through Starlette's TestClient, which speaks the ASGI websocket protocol."""

    def test_refused_without_a_session(
        self, make_middleware: Callable[..., WxASGIMiddleware], inner: InnerApp
    ) -> None:
        from starlette.testclient import TestClient
        from starlette.websockets import WebSocketDisconnect

        with TestClient(make_middleware()) as client:
            for headers in ({}, {"3rd-session": "A" * 43}):
                with (
                    pytest.raises(WebSocketDisconnect) as refused,
                    client.websocket_connect("/ws", headers=headers),
                ):
                    pass
                assert refused.value.code == 4401
        assert inner.calls == 0

    @pytest.mark.parametrize("header", ["3rd-session", "3rd_session"])
    def test_echoes_with_a_session(
        self,
        make_middleware: Callable[..., WxASGIMiddleware],
        inner: InnerApp,
        fake_wechat: FakeWeChat,
        header: str,
    ) -> None:
        from starlette.testclient import TestClient

        with TestClient(make_middleware()) as client:
            login = client.post("/wx/login", json={"code": fake_wechat.issue_code()})
            token = login.json()["3rd_session"]
            with client.websocket_connect("/ws", headers={header: token}) as websocket:
                websocket.send_text("hello")
                assert websocket.receive_text() == "hello"
        [scope] = inner.scopes
        assert scope["wxmiddleware.openid"] == fake_wechat.openid_for("alice")
        assert scope["user"].identity == fake_wechat.openid_for("alice")

    def test_store_down_closes_with_4503(
        self, make_middleware: Callable[..., WxASGIMiddleware], inner: InnerApp
    ) -> None:
        from starlette.testclient import TestClient
        from starlette.websockets import WebSocketDisconnect

        class DownStore(AsyncMemoryStore):
            async def get(self, token: str, idle_ttl: int) -> Optional[WxSession]:
                raise StoreUnavailable()

        with (
            TestClient(make_middleware(store=DownStore())) as client,
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect("/ws", headers={"3rd-session": "A" * 43}),
        ):
            pass
        assert refused.value.code == 4503
        assert inner.calls == 0


class TestConcurrency:
    async def test_health_answers_while_a_hundred_logins_wait(
        self, make_client: Callable[..., httpx.AsyncClient], fake_wechat: FakeWeChat
    ) -> None:
        fake_wechat.latency = 1.0
        client = make_client(read_timeout=5.0)
        answered: List[str] = []

        async def log_in(user: str) -> None:
            response = await client.post("/wx/login", json={"code": fake_wechat.issue_code(user)})
            answered.append(f"login {response.status_code}")

        logins = [asyncio.ensure_future(log_in(f"user-{n}")) for n in range(100)]
        while fake_wechat.jscode2session_calls < 100:  # until every login waits on WeChat
            assert not any(task.done() for task in logins), "a login ended early"
            await asyncio.sleep(0.01)
        health = await client.get("/health")
        answered.append(f"health {health.status_code}")
        await asyncio.gather(*logins)
        assert answered == ["health 200"] + ["login 200"] * 100

    async def test_two_logins_with_one_code_make_one_upstream_call(
        self, client: httpx.AsyncClient, fake_wechat: FakeWeChat
    ) -> None:
        fake_wechat.latency = 0.3
        code = fake_wechat.issue_code()
        first, second = await asyncio.gather(
            client.post("/wx/login", json={"code": code}),
            client.post("/wx/login", json={"code": code}),
        )
        assert first.status_code == second.status_code == 200
        assert first.json()["3rd_session"] == second.json()["3rd_session"]
        assert fake_wechat.jscode2session_calls == 1


async def test_nothing_secret_is_answered_or_logged(
    make_client: Callable[..., httpx.AsyncClient],
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    session_keys: List[str] = []

    def remember_key(session: WxSession, scope: Scope) -> None:
        session_keys.append(session.session_key)

    client = make_client(on_login=remember_key)
    answers: List[str] = []
    token = await login(client, fake_wechat)
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
        response = await client.post("/wx/login", json={"code": fake_wechat.issue_code()})
        assert response.status_code >= 500
        answers.append(response.text + str(response.headers))
    response = await client.get("/api/me", headers={"3rd-session": token})
    answers.append(response.text + str(response.headers))
    response = await client.post("/wx/logout", headers={"3rd-session": token})
    assert response.status_code == 204
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "login failed" in logged
    assert "send_request_headers" in logged  # httpcore's records of the calls to WeChat
    assert "WeChat GET /sns/jscode2session: HTTP 200" in logged  # and the client's own
    assert session_keys
    for text in ["\n".join(answers), logged]:
        assert fake_wechat.secret not in text
        assert "js_code" not in text and "secret=" not in text
        assert token not in text
        for key in session_keys:
            assert key not in text
