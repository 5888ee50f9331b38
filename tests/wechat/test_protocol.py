"""jscode2session request building, reply parsing and the retry rule, without I/O."""

from __future__ import annotations

import json
import time
from typing import Type

import pytest

from wxmiddleware.config import WxConfig
from wxmiddleware.errors import (
    InvalidCode,
    RateLimited,
    UpstreamBusy,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    UserBlocked,
    WxError,
)
from wxmiddleware.wechat._protocol import (
    CodeSession,
    ReplyCollector,
    jscode2session_request,
    parse_jscode2session,
    retry_delay,
)

CONFIG = WxConfig(appid="wxappid", secret="s3cret-value", api_base="http://127.0.0.1:9/base/")


def test_request() -> None:
    request = jscode2session_request(CONFIG, "x&appid=other")
    assert request.url(CONFIG) == "http://127.0.0.1:9/base/sns/jscode2session"
    assert request.method == "GET" and not request.with_token
    assert request.query(None) == {
        "appid": "wxappid",
        "secret": "s3cret-value",
        "js_code": "x&appid=other",
        "grant_type": "authorization_code",
    }


def test_success() -> None:
    body = json.dumps({"openid": "o1", "session_key": "k==", "unionid": "u1"}).encode()
    assert parse_jscode2session(200, body) == CodeSession("o1", "k==", "u1")
    body = json.dumps({"openid": "o1", "session_key": "k==", "errcode": 0}).encode()
    assert parse_jscode2session(200, body) == CodeSession("o1", "k==", None)


def test_session_key_not_in_repr() -> None:
    assert "secretkey" not in repr(CodeSession("o1", "secretkey"))


@pytest.mark.parametrize(
    ("errcode", "error", "status"),
    [
        (-1, UpstreamBusy, 503),
        (40029, InvalidCode, 401),
        (40163, InvalidCode, 401),
        (45011, RateLimited, 429),
        (40226, UserBlocked, 403),
        (40013, UpstreamError, 502),
        (40125, UpstreamError, 502),
        (99999, UpstreamError, 502),
    ],
)
def test_errcodes(errcode: int, error: Type[WxError], status: int) -> None:
    body = json.dumps({"errcode": errcode, "errmsg": "whatever"}).encode()
    with pytest.raises(error) as info:
        parse_jscode2session(200, body)
    assert info.value.status == status
    assert info.value.errcode == errcode


def test_rate_limit_has_retry_after() -> None:
    with pytest.raises(RateLimited) as info:
        parse_jscode2session(200, b'{"errcode": 45011, "errmsg": "limit"}')
    assert ("Retry-After", "60") in info.value.headers


def test_bad_credentials_tell_the_operator() -> None:
    with pytest.raises(UpstreamError) as info:
        parse_jscode2session(200, b'{"errcode": 40125, "errmsg": "invalid appsecret"}')
    assert "WX_SECRET" in (info.value.detail or "")
    assert "secret" not in info.value.message.lower()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, b"<html>error</html>"),
        (302, b""),
        (200, b"<html>hello</html>"),
        (200, b'{"openid": "o'),
        (200, b"\xff\xfe"),
        (200, b"[]"),
        (200, b"{}"),
        (200, b'{"openid": "o1"}'),
        (200, b'{"openid": "", "session_key": "k"}'),
        (200, b'{"openid": 5, "session_key": "k"}'),
        (200, b'{"errcode": "x"}'),
        (200, b'{"errcode": true}'),
    ],
)
def test_unusable_replies_are_502(status: int, body: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        parse_jscode2session(status, body)
    assert info.value.status == 502


def test_retry_rule() -> None:
    assert retry_delay(1, UpstreamBusy()) is not None
    assert retry_delay(1, UpstreamUnreachable()) is not None
    assert retry_delay(2, UpstreamBusy()) is None
    for error in (UpstreamTimeout(), UpstreamError(), InvalidCode(), RateLimited()):
        assert retry_delay(1, error) is None


def test_collector_limits_size_and_time() -> None:
    collector = ReplyCollector(time.monotonic() + 10, limit=10)
    collector.feed(b"12345")
    collector.feed(b"67890")
    assert collector.body == b"1234567890"
    with pytest.raises(UpstreamError):
        collector.feed(b"x")
    late = ReplyCollector(time.monotonic() - 1)
    with pytest.raises(UpstreamTimeout):
        late.feed(b"x")
