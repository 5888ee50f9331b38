"""The third-party platform's login request and its errors (issue 22), without I/O."""

from __future__ import annotations

from wxmiddleware import WxConfig
from wxmiddleware.core._effects import HttpCall, Invoke
from wxmiddleware.core._upstream import jscode2session
from wxmiddleware.errors import UpstreamError
from wxmiddleware.wechat._paths import COMPONENT_JSCODE2SESSION_PATH
from wxmiddleware.wechat._protocol import (
    component_jscode2session_request,
    error_for_errcode,
    parse_jscode2session,
)

CONFIG = WxConfig(
    appid="wx00000000000000c3",
    component_appid="wxcomponent0000001",
    component_token=lambda component_appid: "platform-token",
    store_key="store-key-0123456789abcdef",
)


def test_the_request_carries_the_documented_parameters_in_the_query() -> None:
    request = component_jscode2session_request(CONFIG, "x&appid=other", "platform-token")
    assert (request.method, request.path) == ("GET", COMPONENT_JSCODE2SESSION_PATH)
    assert request.query(None) == {
        "appid": "wx00000000000000c3",
        "js_code": "x&appid=other",  # a parameter value, URL-encoded by the client
        "grant_type": "authorization_code",
        "component_appid": "wxcomponent0000001",
        "component_access_token": "platform-token",
    }
    assert "platform-token" not in repr(request)


def test_the_flow_asks_for_the_component_token_then_calls_the_platform_endpoint() -> None:
    flow = jscode2session(CONFIG, "code-1")
    effect = next(flow)
    assert isinstance(effect, Invoke) and effect.args == ("wxcomponent0000001",)
    call = flow.send("platform-token")
    assert isinstance(call, HttpCall) and call.url.endswith(COMPONENT_JSCODE2SESSION_PATH)
    assert "platform-token" not in repr(call)
    try:
        flow.send((200, b'{"openid": "o1", "session_key": "k1"}'))
    except StopIteration as stop:
        assert stop.value.openid == "o1"


def test_61003_is_a_502_whose_detail_names_it() -> None:
    error = error_for_errcode(61003, "component is not authorized by this account")
    assert isinstance(error, UpstreamError) and error.status == 502
    assert error.errcode == 61003 and error.detail is not None and "61003" in error.detail
    assert "authorised" in error.detail


def test_the_answer_is_parsed_as_jscode2sessions() -> None:
    reply = parse_jscode2session(200, b'{"openid": "o", "session_key": "k", "unionid": "u"}')
    assert (reply.openid, reply.unionid) == ("o", "u")
