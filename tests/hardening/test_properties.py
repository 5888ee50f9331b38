"""Property tests: random requests never break the invariants of the contract, WSGI and ASGI."""

from __future__ import annotations

import logging
import time
from typing import Iterator, List, Tuple
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings

from wxmiddleware import WxSession
from wxmiddleware.testing import FakeWeChat

from ..middleware.stubs import live_memory_store
from .drivers import Answer, raw_client
from .strategies import LIVE_TOKEN, TOKEN_HEADERS, requests

Request = Tuple[str, str, List[Tuple[str, str]], bytes]
SESSION_KEY = "c2Vzc2lvbi1rZXktc2VjcmV0"
# A session of the fake's app: a store finds a session only for its own app.
LIVE_SESSION = WxSession(
    "o-live-user", SESSION_KEY, None, time.time(), time.time() + 86400, FakeWeChat.DEFAULT_APPID
)
TOKEN_HEADER_NAMES = {name.lower().replace("_", "-") for name in TOKEN_HEADERS}


def is_public(raw_path: str) -> bool:
    """Whether the path is the one public path, ``/health``: public paths match exactly, and
    a path that decodes to exactly ``/health`` has no dot segment or encoded separator."""
    return unquote(raw_path.partition("?")[0], encoding="latin-1") == "/health"


def check_invariants(answer: Answer, request: Request, secret: str) -> None:
    """The invariants every answer keeps, whatever the request."""
    method, raw_path, headers, _ = request
    assert answer.status < 500, answer.body
    if method == "HEAD" and not answer.app_ran:
        # The middleware's answers to HEAD have no body (issue 17).
        assert answer.body == b""
    elif answer.status >= 400:
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["error"]
    if answer.app_ran and not is_public(raw_path):
        # A protected route ran: the live token must have been sent.
        sent = {
            part.strip()
            for name, value in headers
            if name.lower().replace("_", "-") in TOKEN_HEADER_NAMES
            for part in value.split(",")
        }
        assert LIVE_TOKEN in sent
        assert answer.json()["openid"] == LIVE_SESSION.openid
    json_body = answer.headers.get("content-type") == "application/json" and answer.body
    if json_body and "code" in answer.json():
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
    adapter: str, fake: FakeWeChat, request: Request, caplog: pytest.LogCaptureFixture
) -> None:
    if adapter == "asgi":
        pytest.importorskip("httpx")
    store = live_memory_store(adapter, LIVE_TOKEN, LIVE_SESSION, 3600)
    send = raw_client(
        adapter,
        fake.appid,
        fake.secret,
        fake.url,
        store=store,
        connect_timeout=2.0,
        read_timeout=2.0,
        allow_get_login=True,
    )
    method, path, headers, body = request
    caplog.set_level(logging.DEBUG, logger="wxmiddleware")
    seen = len(caplog.records)
    answer = send(method, path, headers, body, False)
    check_invariants(answer, request, fake.secret)
    # No client can write ERROR lines at will, and no line names the live token.
    logged = caplog.records[seen:]
    assert not [record for record in logged if record.levelno >= logging.ERROR]
    assert not [record for record in logged if LIVE_TOKEN in record.getMessage()]
