"""Send one raw request straight to a wrapped app and report what came back.

The driver builds the WSGI environ (or ASGI scope) by hand, so a test can send what no
well-behaved client library would: duplicate headers, control bytes, lying lengths.
"""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import unquote

Headers = Sequence[Tuple[str, str]]


@dataclass
class Answer:
    status: int
    headers: Dict[str, str]
    body: bytes
    app_ran: bool

    def json(self) -> Any:
        return json.loads(self.body)


class RecordingApp:
    """The wrapped app: records each call and answers 200 with the openid it was given."""

    def __init__(self) -> None:
        self.calls: List[Dict[str, Any]] = []

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        self.calls.append(environ)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"openid": environ.get("wxmiddleware.openid")}).encode()]


def wsgi_environ(
    method: str,
    raw_path: str,
    headers: Headers = (),
    body: bytes = b"",
    chunked: bool = False,
) -> Dict[str, Any]:
    """The environ gunicorn would build: repeated headers joined with commas. Values go in
    as given: a lone surrogate in one stands for a server that decodes with
    ``surrogateescape``."""
    path, _, query = raw_path.partition("?")
    environ: Dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote(path, encoding="latin-1"),
        "RAW_URI": raw_path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if chunked:
        environ["wsgi.input_terminated"] = True
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    elif body or method in ("POST", "PUT", "PATCH"):
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if key == "CONTENT_LENGTH":
            environ["CONTENT_LENGTH"] = value
            continue
        key = "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def wsgi_request(
    app: Callable[..., Any],
    recorder: RecordingApp,
    method: str,
    raw_path: str,
    headers: Headers = (),
    body: bytes = b"",
    chunked: bool = False,
) -> Answer:
    """Call a WSGI app the way gunicorn would: repeated headers joined with commas."""
    environ = wsgi_environ(method, raw_path, headers, body, chunked)
    status_holder: List[str] = []
    header_holder: List[Tuple[str, str]] = []

    def start_response(
        status: str, response_headers: List[Tuple[str, str]], exc_info: Optional[Any] = None
    ) -> None:
        status_holder.append(status)
        header_holder.extend(response_headers)

    before = len(recorder.calls)
    result = app(environ, start_response)
    try:
        body_out = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return Answer(
        status=int(status_holder[0].split()[0]),
        headers={name.lower(): value for name, value in header_holder},
        body=body_out,
        app_ran=len(recorder.calls) > before,
    )


class RecordingASGIApp:
    """The wrapped ASGI app: records each call and answers 200 with the openid it was given."""

    def __init__(self) -> None:
        self.calls: List[Dict[str, Any]] = []

    async def __call__(self, scope: Dict[str, Any], receive: Any, send: Any) -> None:
        self.calls.append(scope)
        body = json.dumps({"openid": scope.get("wxmiddleware.openid")}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def asgi_scope(
    method: str,
    raw_path: str,
    headers: Headers = (),
    body: bytes = b"",
    chunked: bool = False,
) -> Dict[str, Any]:
    """The scope uvicorn would build: each header as sent (names lower-cased, values as
    UTF-8, lone surrogates included)."""
    path, _, query = raw_path.partition("?")
    # A lone surrogate goes out as the UTF-8 bytes a careless client would send for it.
    raw_headers = [
        (name.lower().encode("latin-1"), value.encode("utf-8", "surrogatepass"))
        for name, value in headers
    ]
    names = {name for name, _ in raw_headers}
    if not chunked and b"content-length" not in names and (body or method in ("POST", "PUT")):
        raw_headers.append((b"content-length", str(len(body)).encode()))
    scope: Dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    return scope


def asgi_receive(body: bytes, chunked: bool = False) -> Callable[[], Awaitable[Dict[str, Any]]]:
    """The receive callable of a request: a chunked body in pieces, a sized one in one message;
    then ``http.disconnect``."""
    pieces = [body[i : i + 1024] for i in range(0, len(body), 1024)] if chunked else [body]

    async def receive() -> Dict[str, Any]:
        if pieces:
            chunk = pieces.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pieces)}
        return {"type": "http.disconnect"}

    return receive


def asgi_request(
    app: Callable[..., Awaitable[None]],
    recorder: RecordingASGIApp,
    method: str,
    raw_path: str,
    headers: Headers = (),
    body: bytes = b"",
    chunked: bool = False,
) -> Answer:
    """Call an ASGI app the way uvicorn would: each header as sent, the body in messages."""
    scope = asgi_scope(method, raw_path, headers, body, chunked)
    receive = asgi_receive(body, chunked)
    sent: List[Dict[str, Any]] = []

    async def send(message: Dict[str, Any]) -> None:
        sent.append(message)

    before = len(recorder.calls)
    asyncio.run(app(scope, receive, send))
    start = next(message for message in sent if message["type"] == "http.response.start")
    return Answer(
        status=start["status"],
        headers={name.decode().lower(): value.decode() for name, value in start["headers"]},
        body=b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
        app_ran=len(recorder.calls) > before,
    )


Send = Callable[[str, str, Headers, bytes, bool], Answer]


def raw_client(
    adapter: str, appid: str, secret: str, api_base: str, store: Any = None, **fields: Any
) -> Send:
    """``send(method, raw_path, headers, body, chunked)`` to a freshly wrapped recording app
    (``/health`` public); ``store`` defaults to a memory store of the adapter's kind."""
    from wxmiddleware import WxConfig

    from ..middleware.stubs import memory_store

    config = WxConfig(
        appid=appid, secret=secret, api_base=api_base, public_paths=("/health",), **fields
    )
    store = store if store is not None else memory_store(adapter)
    if adapter == "wsgi":
        from wxmiddleware import WxMiddleware

        recorder = RecordingApp()
        middleware = WxMiddleware(recorder, config=config, store=store)

        def send(
            method: str, raw_path: str, headers: Headers, body: bytes, chunked: bool = False
        ) -> Answer:
            return wsgi_request(middleware, recorder, method, raw_path, headers, body, chunked)

        return send
    from wxmiddleware import WxASGIMiddleware

    asgi_recorder = RecordingASGIApp()
    wrapped = WxASGIMiddleware(asgi_recorder, config=config, store=store)

    def send_asgi(
        method: str, raw_path: str, headers: Headers, body: bytes, chunked: bool = False
    ) -> Answer:
        return asgi_request(wrapped, asgi_recorder, method, raw_path, headers, body, chunked)

    return send_asgi
