"""One way to talk to either adapter, so each behaviour is written once.

A driver wraps a recording app in :class:`~wxmiddleware.WxMiddleware` (and talks to it through
WebTest) or :class:`~wxmiddleware.WxASGIMiddleware` (through httpx's ASGI transport, on an event
loop in a background thread, so that tests stay synchronous and threads may share it). Every
request returns a :class:`Reply`: the status, the headers, the body and what the wrapped app saw
(:class:`Seen`), or ``None`` when the middleware answered by itself.
"""

from __future__ import annotations

import json
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import urlencode

from wxmiddleware import WxConfig, WxMiddleware, WxSession
from wxmiddleware.testing import FakeWeChat

from ..hardening.drivers import asgi_receive, asgi_scope, wsgi_environ
from .stubs import ASGI, WSGI, aclose_store, memory_store

HeaderValue = Union[str, bytes]
Headers = Sequence[Tuple[str, HeaderValue]]
Request = Dict[str, Any]  # a WSGI environ or an ASGI scope


def app_config(fake: FakeWeChat, **fields: Any) -> WxConfig:
    """The config every behaviour test starts from: ``/health`` public, ``/feed`` optional."""
    values: Dict[str, Any] = {
        "appid": fake.appid,
        "secret": fake.secret,
        "api_base": fake.url,
        "public_paths": ("/health",),
        "optional_paths": ("/feed",),
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
    }
    values.update(fields)
    return WxConfig(**values)


def path_of(request: Request) -> str:
    """The path of a WSGI environ or an ASGI scope (what an ``on_login`` hook is given)."""
    return str(request["PATH_INFO"] if "PATH_INFO" in request else request["path"])


@dataclass
class Seen:
    """What the wrapped app found in its environ or scope."""

    path: str
    session: Optional[WxSession]
    openid: Optional[str]
    session_key: Optional[str]
    unionid: Optional[str]
    #: The framework-facing identity: ``REMOTE_USER`` (WSGI), or the identity of an
    #: authenticated ``scope["user"]`` (ASGI); ``None`` when there is none.
    user: Optional[str]
    #: The environ or scope itself.
    request: Request

    @property
    def session_key_matches(self) -> bool:
        return self.session is not None and self.session_key == self.session.session_key


def seen_in(request: Request) -> Seen:
    if "PATH_INFO" in request:
        user = request.get("REMOTE_USER")
    else:
        scope_user = request.get("user")
        authenticated = scope_user is not None and scope_user.is_authenticated
        user = scope_user.identity if authenticated else None
    return Seen(
        path=path_of(request),
        session=request.get("wxmiddleware.session"),
        openid=request.get("wxmiddleware.openid"),
        session_key=request.get("wxmiddleware.session_key"),
        unionid=request.get("wxmiddleware.unionid"),
        user=user,
        request=request,
    )


@dataclass
class Reply:
    status: int
    #: Header names lower-cased.
    headers: Dict[str, str]
    body: bytes
    #: What the wrapped app saw, or ``None`` if it did not run.
    seen: Optional[Seen]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def assert_error(reply: Reply, status: int, error: str) -> None:
    """An error answer: the status, a JSON body with the error word and a message."""
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["error"] == error
    assert reply.json()["message"]


class Unreadable:
    """A request body the middleware must refuse without reading."""


UNREADABLE = Unreadable()


class ClosingBody:
    """A WSGI response iterable that records whether the server closed it."""

    def __init__(self, chunks: List[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Any:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed = True


class InnerWSGI:
    """The wrapped WSGI app: records every environ; answers 200 with a closable iterable."""

    def __init__(self) -> None:
        self.requests: List[Request] = []
        self.last_body: Optional[ClosingBody] = None

    def __call__(self, environ: Request, start_response: Callable[..., Any]) -> ClosingBody:
        self.requests.append(environ)
        start_response("200 OK", [("Content-Type", "application/json")])
        body = json.dumps({"openid": environ.get("wxmiddleware.openid")}).encode()
        self.last_body = ClosingBody([body])
        return self.last_body


class InnerASGI:
    """The wrapped ASGI app: records every scope; answers 200; echoes websocket text."""

    def __init__(self) -> None:
        self.requests: List[Request] = []

    async def __call__(self, scope: Request, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # Starlette's TestClient runs one
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        self.requests.append(scope)
        if scope["type"] == "websocket":
            await self.echo(receive, send)
            return
        body = json.dumps({"openid": scope.get("wxmiddleware.openid")}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
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


def _encode(
    json_body: Any, form: Optional[Mapping[str, str]], body: Optional[bytes], content_type: str
) -> Tuple[Optional[bytes], str]:
    if json_body is not None:
        return json.dumps(json_body).encode(), content_type or "application/json"
    if form is not None:
        return urlencode(form).encode(), content_type or "application/x-www-form-urlencoded"
    return body, content_type


class Driver:
    """Sends requests to one wrapped app; see the module docstring."""

    name: str
    inner: Any
    middleware: Any

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        form: Optional[Mapping[str, str]] = None,
        body: Optional[bytes] = None,
        content_type: str = "",
        headers: Headers = (),
        query: Optional[Mapping[str, str]] = None,
    ) -> Reply:
        """Send a request as a client library would (a length, the headers as given)."""
        data, content_type = _encode(json, form, body, content_type)
        url = path + ("?" + urlencode(query) if query else "")
        before = len(self.inner.requests)
        status, reply_headers, reply_body = self._send(method, url, data, content_type, headers)
        return Reply(status, reply_headers, reply_body, self._seen_since(before))

    def get(self, path: str, headers: Headers = (), **kwargs: Any) -> Reply:
        return self.request("GET", path, headers=headers, **kwargs)

    def post(self, path: str, headers: Headers = (), **kwargs: Any) -> Reply:
        return self.request("POST", path, headers=headers, **kwargs)

    def login(self, fake: FakeWeChat, user: str = "alice") -> str:
        reply = self.post("/wx/login", json={"code": fake.issue_code(user)})
        assert reply.status == 200, reply.body
        token: str = reply.json()["3rd_session"]
        return token

    def me(self, token: str, header: str = "3rd-session", path: str = "/api/me") -> Reply:
        return self.get(path, headers=[(header, token)])

    def raw(
        self,
        method: str,
        raw_path: str,
        headers: Sequence[Tuple[str, str]] = (),
        body: Union[bytes, Unreadable] = b"",
        chunked: bool = False,
    ) -> Reply:
        """Call the middleware straight with a hand-built environ or scope (see
        :mod:`tests.hardening.drivers`); ``UNREADABLE`` as the body fails the test if read."""
        raise NotImplementedError

    def close_store(self, store: Any) -> None:
        raise NotImplementedError

    def _send(
        self, method: str, url: str, body: Optional[bytes], content_type: str, headers: Headers
    ) -> Tuple[int, Dict[str, str], bytes]:
        raise NotImplementedError

    def _seen_since(self, before: int) -> Optional[Seen]:
        requests = self.inner.requests
        return seen_in(requests[-1]) if len(requests) > before else None


class _UnreadableInput:
    def read(self, *args: Any) -> bytes:
        raise AssertionError("the body was read")

    readline = read


class WsgiDriver(Driver):
    name = WSGI

    def __init__(self, middleware: WxMiddleware, inner: InnerWSGI) -> None:
        from webtest import TestApp

        self.middleware = middleware
        self.inner = inner
        self.client = TestApp(middleware)

    def _send(
        self, method: str, url: str, body: Optional[bytes], content_type: str, headers: Headers
    ) -> Tuple[int, Dict[str, str], bytes]:
        # A WSGI server decodes header bytes as latin-1.
        environ_headers = [
            (name, value.decode("latin-1") if isinstance(value, bytes) else value)
            for name, value in headers
        ]
        params: Dict[str, Any] = {}
        if body is not None:
            params["body"] = body
        if content_type:
            params["content_type"] = content_type
        response = self.client.request(
            url, method=method, headers=environ_headers, expect_errors=True, **params
        )
        reply_headers = {name.lower(): value for name, value in response.headerlist}
        return response.status_int, reply_headers, response.body

    def raw(
        self,
        method: str,
        raw_path: str,
        headers: Sequence[Tuple[str, str]] = (),
        body: Union[bytes, Unreadable] = b"",
        chunked: bool = False,
    ) -> Reply:
        unreadable = isinstance(body, Unreadable)
        environ = wsgi_environ(method, raw_path, headers, b"" if unreadable else body, chunked)
        if unreadable:
            environ["wsgi.input"] = _UnreadableInput()
        answer: Dict[str, Any] = {}

        def start_response(status: str, response_headers: Any, exc_info: Any = None) -> None:
            answer["status"] = int(status.split()[0])
            answer["headers"] = {name.lower(): value for name, value in response_headers}

        before = len(self.inner.requests)
        result = self.middleware(environ, start_response)
        try:
            body_out = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return Reply(answer["status"], answer["headers"], body_out, self._seen_since(before))

    def close_store(self, store: Any) -> None:
        store.close()


class AsgiDriver(Driver):
    name = ASGI

    def __init__(self, middleware: Any, inner: InnerASGI, portal: Any) -> None:
        import httpx

        self.middleware = middleware
        self.inner = inner
        self.portal = portal
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=middleware), base_url="http://testserver"
        )

    def _send(
        self, method: str, url: str, body: Optional[bytes], content_type: str, headers: Headers
    ) -> Tuple[int, Dict[str, str], bytes]:
        request_headers = list(headers)
        if content_type:
            request_headers.append(("content-type", content_type))

        async def send() -> Any:
            return await self.client.request(method, url, content=body, headers=request_headers)

        response = self.portal.call(send)
        reply_headers = {name.lower(): value for name, value in response.headers.items()}
        return response.status_code, reply_headers, response.content

    def raw(
        self,
        method: str,
        raw_path: str,
        headers: Sequence[Tuple[str, str]] = (),
        body: Union[bytes, Unreadable] = b"",
        chunked: bool = False,
    ) -> Reply:
        if isinstance(body, Unreadable):
            scope = asgi_scope(method, raw_path, headers, b"", chunked)

            async def receive() -> Dict[str, Any]:
                raise AssertionError("the body was read")

        else:
            scope = asgi_scope(method, raw_path, headers, body, chunked)
            receive = asgi_receive(body, chunked)
        sent: List[Dict[str, Any]] = []

        async def send(message: Dict[str, Any]) -> None:
            sent.append(message)

        async def run() -> None:
            await self.middleware(scope, receive, send)

        before = len(self.inner.requests)
        self.portal.call(run)
        start = next(message for message in sent if message["type"] == "http.response.start")
        return Reply(
            status=start["status"],
            headers={name.decode().lower(): value.decode() for name, value in start["headers"]},
            body=b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
            seen=self._seen_since(before),
        )

    def close_store(self, store: Any) -> None:
        self.portal.call(aclose_store, store)

    def close(self) -> None:
        self.portal.call(self.client.aclose)


@contextmanager
def driver_factory(adapter: str, fake: FakeWeChat) -> Iterator[Callable[..., Driver]]:
    """``make(store=None, config=None, **options)``: a driver for a freshly wrapped app.

    ``config`` defaults to :func:`app_config`; ``options`` go to the middleware (hooks, flags,
    config overrides); the store defaults to a memory store of the adapter's kind.
    """
    with ExitStack() as stack:
        portal: Any = None

        def make(store: Any = None, config: Optional[WxConfig] = None, **options: Any) -> Driver:
            nonlocal portal
            config = config if config is not None else app_config(fake)
            store = store if store is not None else memory_store(adapter)
            if adapter == WSGI:
                inner = InnerWSGI()
                return WsgiDriver(WxMiddleware(inner, config=config, store=store, **options), inner)
            from anyio.from_thread import start_blocking_portal

            from wxmiddleware import WxASGIMiddleware

            if portal is None:
                portal = stack.enter_context(start_blocking_portal())
            inner_asgi = InnerASGI()
            middleware = WxASGIMiddleware(inner_asgi, config=config, store=store, **options)
            driver = AsgiDriver(middleware, inner_asgi, portal)
            stack.callback(driver.close)
            return driver

        yield make
