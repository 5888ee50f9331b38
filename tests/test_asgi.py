"""What only WxASGIMiddleware does: an async on_login hook, the scope copied and not mutated,
Starlette's ``user``/``auth``, ``root_path``, lifespan and other scopes passed through,
websockets refused with a close code, streamed bodies and a client that disconnects. The
behaviour both adapters share is in ``tests/middleware/``."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncIterator, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import pytest

from wxmiddleware import WxSession
from wxmiddleware.testing import FakeWeChat

from .frameworks.flows import check_websocket_echo, check_websocket_refused
from .hardening.drivers import asgi_scope
from .middleware.drivers import (
    AsgiDriver,
    Driver,
    InnerASGI,
    Request,
    app_config,
    assert_error,
    driver_factory,
)
from .middleware.stubs import ASGI, down_store, memory_store

httpx = pytest.importorskip("httpx")

from wxmiddleware import WxASGIMiddleware  # noqa: E402
from wxmiddleware.asgi import WxUser  # noqa: E402

Message = Dict[str, Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_app(fake_wechat: FakeWeChat) -> Iterator[Callable[..., Driver]]:
    with driver_factory(ASGI, fake_wechat) as make:
        yield make


@pytest.fixture
def app(make_app: Callable[..., Driver]) -> AsgiDriver:
    driver = make_app()
    assert isinstance(driver, AsgiDriver)
    return driver


@pytest.fixture
def inner() -> InnerASGI:
    return InnerASGI()


@pytest.fixture
def make_middleware(fake_wechat: FakeWeChat, inner: InnerASGI) -> Callable[..., Any]:
    """A WxASGIMiddleware around ``inner``, for tests that call it straight."""

    def make(store: Any = None, **options: Any) -> Any:
        store = store if store is not None else memory_store(ASGI)
        return WxASGIMiddleware(inner, config=app_config(fake_wechat), store=store, **options)

    return make


def http_scope(
    path: str = "/wx/login",
    method: str = "POST",
    headers: Iterable[Tuple[str, str]] = (("content-type", "application/json"),),
) -> Request:
    """An http scope without a content-length: the body is streamed."""
    return asgi_scope(method, path, list(headers), chunked=True)


async def call(
    app: Any, scope: Request, receive: Callable[[], Any]
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


async def log_in_straight(middleware: Any, fake: FakeWeChat) -> str:
    body = json.dumps({"code": fake.issue_code()}).encode()
    _, answer = await call(middleware, http_scope(), body_messages(body))
    assert answer is not None
    token: str = answer["3rd_session"]
    return token


def test_async_on_login_hook(make_app: Callable[..., Driver], fake_wechat: FakeWeChat) -> None:
    seen: List[str] = []

    async def on_login(session: WxSession, scope: Request) -> Dict[str, Any]:
        seen.append(scope["path"])
        return {"is_new": True}

    app = make_app(expose_openid=True, on_login=on_login)
    body = app.post("/wx/login", json={"code": fake_wechat.issue_code("bob")}).json()
    assert body["openid"] == fake_wechat.openid_for("bob")
    assert body["unionid"] == fake_wechat.unionid_for("bob")
    assert body["is_new"] is True and seen == ["/wx/login"]
    assert "session_key" not in body


class TestStarletteUser:
    @pytest.mark.parametrize("header", ["3rd-session", "3rd_session", "X-WX-Skey", "x_wx_skey"])
    def test_user_and_auth_with_a_session(
        self, app: AsgiDriver, fake_wechat: FakeWeChat, header: str
    ) -> None:
        token = app.login(fake_wechat)
        seen = app.me(token, header).seen
        assert seen is not None
        user, auth = seen.request["user"], seen.request["auth"]
        assert user.identity == fake_wechat.openid_for("alice") and user.is_authenticated is True
        assert auth.scopes == ["authenticated"]

    def test_user_and_auth_on_public_and_optional_paths(
        self, app: AsgiDriver, fake_wechat: FakeWeChat
    ) -> None:
        health = app.get("/health").seen
        assert health is not None and health.request.get("user") is None
        feed = app.get("/feed").seen
        assert feed is not None and isinstance(feed.request["user"], WxUser)
        assert feed.request["user"].is_authenticated is False
        assert feed.request["auth"].scopes == []
        token = app.login(fake_wechat)
        feed = app.me(token, path="/feed").seen
        assert feed is not None and feed.request["auth"].scopes == ["authenticated"]


class TestHeaders:
    def test_hyphen_and_underscore_forms_that_differ_are_400(
        self, app: AsgiDriver, fake_wechat: FakeWeChat
    ) -> None:
        # A WSGI server folds both into one environ key; an ASGI scope keeps both.
        token = app.login(fake_wechat)
        reply = app.get("/api/me", headers=[("3rd-session", token), ("3rd_session", "B" * 43)])
        assert_error(reply, 400, "bad_request")

    @pytest.mark.anyio
    async def test_header_names_are_compared_case_insensitively(
        self, make_middleware: Callable[..., Any], fake_wechat: FakeWeChat, inner: InnerASGI
    ) -> None:
        # Servers lower-case header names, but the ASGI spec does not force every one to.
        middleware = make_middleware()
        token = await log_in_straight(middleware, fake_wechat)
        scope = http_scope("/api/me", "GET", [])
        scope["headers"] = [(b"3RD_SESSION", token.encode())]
        sent, _ = await call(middleware, scope, body_messages(b""))
        assert sent[0]["status"] == 200
        assert inner.requests[-1]["wxmiddleware.openid"] == fake_wechat.openid_for("alice")

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        "extra",
        [
            [(b"content_length", b"0")],
            [(b"content_length", b"99999")],
            [(b"content_type", b"text/plain")],
            [(b"Content_Type", b"text/plain")],
            [(b"content-type", b"text/plain")],
            "repeated content-length",
        ],
    )
    async def test_framing_headers_are_read_by_their_real_names_first_value(
        self, make_middleware: Callable[..., Any], fake_wechat: FakeWeChat, extra: Any
    ) -> None:
        # As servers read them: a client's content_length never stands in for Content-Length,
        # and a repeat does not replace the first value (the token headers are joined).
        body = json.dumps({"code": fake_wechat.issue_code()}).encode()
        length = (b"content-length", str(len(body)).encode())
        scope = http_scope()
        scope["headers"] = [(b"content-type", b"application/json"), length]
        scope["headers"] += [length] if extra == "repeated content-length" else extra
        sent, answer = await call(make_middleware(), scope, body_messages(body))
        assert sent[0]["status"] == 200
        assert answer is not None and "3rd_session" in answer


class TestScope:
    @pytest.mark.anyio
    async def test_paths_below_root_path(
        self, make_middleware: Callable[..., Any], fake_wechat: FakeWeChat
    ) -> None:
        # uvicorn --root-path /app puts the prefix in "path" too; routing strips it.
        transport = httpx.ASGITransport(app=make_middleware(), root_path="/app")
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/app/health")).status_code == 200
            response = await client.post("/app/wx/login", json={"code": fake_wechat.issue_code()})
            assert response.status_code == 200

    @pytest.mark.anyio
    async def test_scope_is_copied(
        self, make_middleware: Callable[..., Any], fake_wechat: FakeWeChat, inner: InnerASGI
    ) -> None:
        middleware = make_middleware()
        token = await log_in_straight(middleware, fake_wechat)
        scope = http_scope("/api/me", "GET", [("3rd-session", token)])
        before = dict(scope)
        await call(middleware, scope, body_messages(b""))
        assert scope == before
        assert inner.requests[-1] is not scope
        assert inner.requests[-1]["wxmiddleware.openid"] == fake_wechat.openid_for("alice")

    @pytest.mark.anyio
    async def test_lifespan_passes_through(self, make_middleware: Callable[..., Any]) -> None:
        events: List[str] = []
        seen: List[Request] = []

        async def app(scope: Request, receive: Any, send: Any) -> None:
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

        scope: Request = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        await middleware(scope, receive, send)
        assert events == ["lifespan.startup", "lifespan.shutdown"]
        assert [m["type"] for m in sent] == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        assert seen == [scope] and seen[0] is scope
        assert scope == {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

    @pytest.mark.anyio
    @pytest.mark.parametrize("store_given", [False, True])
    async def test_lifespan_shutdown_closes_what_the_middleware_opened(
        self, fake_wechat: FakeWeChat, monkeypatch: pytest.MonkeyPatch, store_given: bool
    ) -> None:
        log: List[str] = []

        async def app(scope: Request, receive: Any, send: Any) -> None:
            while True:
                message = await receive()
                log.append(f"app: {message['type']}")
                done = "startup" if message["type"] == "lifespan.startup" else "shutdown"
                await send({"type": f"lifespan.{done}.complete"})
                if done == "shutdown":
                    return

        given = memory_store(ASGI) if store_given else None
        config = app_config(fake_wechat).with_options(store="memory://")
        middleware = WxASGIMiddleware(app, config=config, store=given)
        for name, opened in (("store", middleware.store), ("wechat", middleware.wechat)):

            async def aclose(name: str = name, close: Any = opened.aclose) -> None:
                log.append(f"closed {name}")
                await close()

            monkeypatch.setattr(opened, "aclose", aclose)
        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def receive() -> Message:
            return inbox.pop(0)

        async def send(message: Message) -> None:
            log.append(f"sent: {message['type']}")

        await middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        closed = ["closed wechat"] if store_given else ["closed store", "closed wechat"]
        assert log == [
            "app: lifespan.startup",
            "sent: lifespan.startup.complete",
            "app: lifespan.shutdown",
            *closed,
            "sent: lifespan.shutdown.complete",
        ]

    @pytest.mark.anyio
    async def test_unknown_scope_type_passes_through(
        self, make_middleware: Callable[..., Any], inner: InnerASGI
    ) -> None:
        scope: Request = {"type": "webtransport", "path": "/api/me", "headers": []}

        async def never() -> Message:
            raise AssertionError("the middleware read a message")

        sent, _ = await call(make_middleware(), scope, never)
        assert inner.requests == [scope] and inner.requests[0] is scope
        assert sent[0]["status"] == 200


class TestWebsockets:
    """Through Starlette's TestClient, which speaks the ASGI websocket protocol."""

    def test_refused_without_a_session(
        self, make_middleware: Callable[..., Any], inner: InnerASGI
    ) -> None:
        from starlette.testclient import TestClient

        with TestClient(make_middleware()) as client:
            check_websocket_refused(client, [{}, {"3rd-session": "A" * 43}])
        assert inner.requests == []

    @pytest.mark.parametrize("header", ["3rd-session", "3rd_session"])
    def test_echoes_with_a_session(
        self,
        make_middleware: Callable[..., Any],
        inner: InnerASGI,
        fake_wechat: FakeWeChat,
        header: str,
    ) -> None:
        from starlette.testclient import TestClient

        with TestClient(make_middleware()) as client:
            check_websocket_echo(client, fake_wechat, header, "hello")
        [scope] = inner.requests
        assert scope["wxmiddleware.openid"] == fake_wechat.openid_for("alice")
        assert scope["user"].identity == fake_wechat.openid_for("alice")

    def test_store_down_closes_with_4503(
        self, make_middleware: Callable[..., Any], inner: InnerASGI
    ) -> None:
        from starlette.testclient import TestClient

        with TestClient(make_middleware(store=down_store(ASGI))) as client:
            check_websocket_refused(client, [{"3rd-session": "A" * 43}], code=4503)
        assert inner.requests == []


class TestStreamedBodies:
    @pytest.mark.anyio
    async def test_oversized_chunked_body_stops_being_read(
        self, make_middleware: Callable[..., Any]
    ) -> None:
        reads = 0

        async def endless() -> Message:
            nonlocal reads
            reads += 1
            return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

        sent, body = await call(make_middleware(), http_scope(), endless)
        assert sent[0]["status"] == 400 and body["error"] == "bad_request"
        assert reads == 5  # 4096 bytes allowed: the fifth chunk passes the limit

    @pytest.mark.anyio
    async def test_chunked_body_within_limit(
        self, make_middleware: Callable[..., Any], fake_wechat: FakeWeChat
    ) -> None:
        body = json.dumps({"code": fake_wechat.issue_code()}).encode()
        chunks = [body[:5], b"", body[5:20], body[20:]]
        sent, answer = await call(make_middleware(), http_scope(), body_messages(*chunks))
        assert sent[0]["status"] == 200 and answer["3rd_session"]

    @pytest.mark.anyio
    async def test_disconnect_mid_body_ends_quietly(
        self,
        make_middleware: Callable[..., Any],
        inner: InnerASGI,
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
        assert inner.requests == []
        assert fake_wechat.jscode2session_calls == 0
        assert all(record.levelno <= logging.DEBUG for record in caplog.records)


@pytest.fixture
async def slow_client(
    make_middleware: Callable[..., Any],
) -> AsyncIterator[Any]:
    transport = httpx.ASGITransport(app=make_middleware(read_timeout=5.0))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.mark.anyio
async def test_health_answers_while_a_hundred_logins_wait(
    slow_client: Any, fake_wechat: FakeWeChat
) -> None:
    """One event loop: a request that waits on WeChat does not hold up the others."""
    fake_wechat.latency = 1.0
    answered: List[str] = []

    async def log_in(user: str) -> None:
        response = await slow_client.post("/wx/login", json={"code": fake_wechat.issue_code(user)})
        answered.append(f"login {response.status_code}")

    logins = [asyncio.ensure_future(log_in(f"user-{n}")) for n in range(100)]
    while fake_wechat.jscode2session_calls < 100:  # until every login waits on WeChat
        assert not any(task.done() for task in logins), "a login ended early"
        await asyncio.sleep(0.01)
    health = await slow_client.get("/health")
    # Judged by what was still waiting, not by the clock: on a loaded machine some logins may
    # finish first, but a loop held up by them would answer health only after all of them.
    waiting = sum(not task.done() for task in logins)
    await asyncio.gather(*logins)
    assert health.status_code == 200
    assert waiting > 0, "health was answered only after every login"
    assert answered == ["login 200"] * 100
