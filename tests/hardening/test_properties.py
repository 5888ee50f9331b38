"""Property tests: random requests never break the invariants of the contract, WSGI and ASGI."""

from __future__ import annotations

import time
from typing import Iterator, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings

from wxmiddleware import MemoryStore, WxASGIMiddleware, WxConfig, WxMiddleware, WxSession
from wxmiddleware.core import RequestKind, Router
from wxmiddleware.stores.aio import AsyncMemoryStore
from wxmiddleware.testing import FakeWeChat

from .drivers import Answer, RecordingApp, RecordingASGIApp, asgi_request, wsgi_request
from .strategies import LIVE_TOKEN, TOKEN_HEADERS, requests

Request = Tuple[str, str, List[Tuple[str, str]], bytes]
SESSION_KEY = "c2Vzc2lvbi1rZXktc2VjcmV0"
LIVE_SESSION = WxSession("o-live-user", SESSION_KEY, None, time.time(), time.time() + 86400)
TOKEN_HEADER_NAMES = {name.lower().replace("_", "-") for name in TOKEN_HEADERS}


def check_invariants(answer: Answer, request: Request, config: WxConfig, secret: str) -> None:
    """The invariants every answer keeps, whatever the request."""
    _, raw_path, headers, _ = request
    assert answer.status < 500, answer.body
    if answer.status >= 400:
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["error"]
    kind = Router(config).classify(raw_path.split("?")[0])
    if answer.app_ran and kind is not RequestKind.PUBLIC:
        # A protected route ran: the live token must have been sent.
        sent = {
            part.strip()
            for name, value in headers
            if name.lower().replace("_", "-") in TOKEN_HEADER_NAMES
            for part in value.split(",")
        }
        assert LIVE_TOKEN in sent
        assert answer.json()["openid"] == LIVE_SESSION.openid
    if answer.headers.get("content-type") == "application/json" and "code" in answer.json():
        # Wafer's "code" field goes only to a client that spoke Wafer to us.
        assert {"x-wx-code", "x-wx-skey"} & {name.lower().replace("_", "-") for name, _ in headers}
    text = answer.body.decode("utf-8", "replace") + repr(answer.headers)
    assert secret not in text and SESSION_KEY not in text


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeWeChat]:
    with FakeWeChat() as server:
        yield server


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(request=requests())
@pytest.mark.parametrize("adapter", ["wsgi", "asgi"])
def test_random_requests_keep_the_invariants(
    adapter: str, fake: FakeWeChat, request: Request
) -> None:
    config = WxConfig(
        appid=fake.appid,
        secret=fake.secret,
        api_base=fake.url,
        public_paths=("/health",),
        connect_timeout=2.0,
        read_timeout=2.0,
    )
    store = MemoryStore()
    store.save(LIVE_TOKEN, LIVE_SESSION, 3600)
    method, path, headers, body = request
    if adapter == "wsgi":
        recorder = RecordingApp()
        middleware = WxMiddleware(recorder, config=config, store=store)
        answer = wsgi_request(middleware, recorder, method, path, headers, body)
    else:
        pytest.importorskip("httpx")
        asgi_recorder = RecordingASGIApp()
        wrapped = WxASGIMiddleware(asgi_recorder, config=config, store=AsyncMemoryStore(store))
        answer = asgi_request(wrapped, asgi_recorder, method, path, headers, body)
    check_invariants(answer, request, config, fake.secret)
