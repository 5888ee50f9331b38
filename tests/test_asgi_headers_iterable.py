"""ASGI: a scope whose ``headers`` is a one-pass iterable (the ASGI spec types it as
``Iterable[[bytes, bytes]]``; Starlette copies it into a list for that reason).

The adapter reads the lookup headers first and the whole map later, on first use of
``RequestView.headers``: both must see every header, so a login keeps its ``Content-Type``
and ``X-WX-Code``; and the app behind it must get every header too.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, Iterable, List, Tuple

import pytest

from wxmiddleware import WxASGIMiddleware, WxConfig
from wxmiddleware.stores.aio import AsyncMemoryStore
from wxmiddleware.testing import FakeWeChat

pytest.importorskip("httpx")


async def _app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def _call(
    middleware: Any,
    method: str,
    headers: Iterable[Tuple[bytes, bytes]],
    body: bytes = b"",
    path: str = "/wx/login",
) -> Tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: List[Dict[str, Any]] = []

    async def receive() -> Dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize("kind", ["list", "generator"])
def test_a_login_reads_its_headers_from_a_one_pass_headers_iterable(
    fake_wechat: FakeWeChat, kind: str
) -> None:
    config = WxConfig(appid=fake_wechat.appid, secret=fake_wechat.secret, api_base=fake_wechat.url)
    middleware = WxASGIMiddleware(_app, config=config, store=AsyncMemoryStore())

    def headers(pairs: List[Tuple[bytes, bytes]]) -> Iterable[Tuple[bytes, bytes]]:
        return list(pairs) if kind == "list" else (pair for pair in pairs)

    # A Wafer login: the code is in X-WX-Code.
    code = fake_wechat.issue_code("alice").encode()
    status, body = _call(middleware, "GET", headers([(b"x-wx-code", code)]))
    assert status == 200, body
    assert json.loads(body)["code"] == 0

    # A form login: the body's type is in Content-Type.
    form = b"code=" + fake_wechat.issue_code("bob").encode()
    pairs = [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", str(len(form)).encode()),
    ]
    status, body = _call(middleware, "POST", headers(pairs), form)
    assert status == 200, body
    assert "3rd_session" in json.loads(body)


def test_the_app_gets_every_header_of_a_one_pass_headers_iterable(
    fake_wechat: FakeWeChat,
) -> None:
    seen: Dict[str, List[Tuple[bytes, bytes]]] = {}

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        seen[scope["path"]] = list(scope["headers"])
        await _app(scope, receive, send)

    config = WxConfig(
        appid=fake_wechat.appid,
        secret=fake_wechat.secret,
        api_base=fake_wechat.url,
        public_paths=("/health",),
        optional_paths=("/feed",),
    )
    middleware = WxASGIMiddleware(app, config=config, store=AsyncMemoryStore())
    status, body = _call(
        middleware, "GET", [(b"x-wx-code", fake_wechat.issue_code("alice").encode())]
    )
    token = json.loads(body)["data"]["skey"].encode()
    probe = (b"x-probe", b"seen")
    for path, pairs in [
        ("/health", [probe]),
        ("/feed", [probe]),
        ("/api/me", [probe, (b"3rd-session", token)]),
    ]:
        status, body = _call(middleware, "GET", (pair for pair in pairs), path=path)
        assert status == 200, (path, body)
        assert seen[path] == pairs, path
