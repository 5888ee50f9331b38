"""The fake WeChat's behaviour model, driven directly: no server, no sockets, explicit times."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Dict, Optional
from urllib.parse import urlencode

import pytest

from wxmiddleware.testing import (
    CHECK_SESSION_PATH,
    JSCODE2SESSION_PATH,
    PHONE_NUMBER_PATH,
    STABLE_TOKEN_PATH,
    TOKEN_PATH,
    FakeWeChat,
    RecordedCall,
)
from wxmiddleware.testing.model import Arrival, WeChatModel


def ask(
    model: WeChatModel,
    method: str,
    path: str,
    query: Optional[Dict[str, str]] = None,
    body: Any = None,
    *,
    now: Optional[float] = None,
) -> Any:
    """One request through the model at ``now``: ``(status, content type, JSON body)``."""
    raw = b"" if body is None else json.dumps(body).encode()
    call = RecordedCall.of(method, f"{path}?{urlencode(query or {})}", raw)
    reply = model.reply(model.receive(call), time.monotonic() if now is None else now)
    assert reply is not None
    return reply.status, reply.content_type, json.loads(reply.body)


def jscode2session(model: WeChatModel, code: str, *, now: Optional[float] = None) -> Any:
    query = {
        "appid": model.appid,
        "secret": model.secret,
        "js_code": code,
        "grant_type": "authorization_code",
    }
    return ask(model, "GET", JSCODE2SESSION_PATH, query, now=now)


def login(model: WeChatModel, user: str = "alice") -> Dict[str, str]:
    status, _, body = jscode2session(model, model.issue_code(user))
    assert status == 200 and "openid" in body
    answer: Dict[str, str] = body
    return answer


def stable_token(model: WeChatModel, *, now: Optional[float] = None, **extra: Any) -> Any:
    body = {
        "grant_type": "client_credential",
        "appid": model.appid,
        "secret": model.secret,
        **extra,
    }
    return ask(model, "POST", STABLE_TOKEN_PATH, body=body, now=now)[2]


def check_session(
    model: WeChatModel, token: str, openid: str, session_key: str, *, now: Optional[float] = None
) -> Any:
    query = {
        "access_token": token,
        "openid": openid,
        "signature": hmac.new(session_key.encode(), b"", hashlib.sha256).hexdigest(),
        "sig_method": "hmac_sha256",
    }
    return ask(model, "GET", CHECK_SESSION_PATH, query, now=now)[2]


# -- jscode2session -----------------------------------------------------------------------


def test_issued_code_answers_a_session() -> None:
    model = WeChatModel()

    status, content_type, body = jscode2session(model, model.issue_code("alice"))

    assert (status, content_type) == (200, "text/plain")
    assert set(body) == {"openid", "session_key", "unionid"}
    assert body["openid"] == model.openid_for("alice")
    assert body["unionid"] == model.unionid_for("alice")
    assert len(base64.b64decode(body["session_key"], validate=True)) == 16


def test_reused_code_is_40163() -> None:
    model = WeChatModel()
    code = model.issue_code()
    jscode2session(model, code)

    status, _, body = jscode2session(model, code)

    assert status == 200
    assert body["errcode"] == 40163
    assert body["errmsg"].startswith("code been used, rid: ")


@pytest.mark.parametrize("code", ["", "0" * 32])
def test_unknown_code_is_40029(code: str) -> None:
    assert jscode2session(WeChatModel(), code)[2]["errcode"] == 40029


def test_code_expires_after_its_ttl() -> None:
    model = WeChatModel()
    code = model.issue_code()
    later = time.monotonic() + WeChatModel.CODE_TTL + 1

    assert jscode2session(model, code, now=later)[2]["errcode"] == 40029
    assert "openid" in jscode2session(model, code)[2]  # the refusal left it usable


def test_minute_quota_is_45011_per_user() -> None:
    model = WeChatModel()
    start = time.monotonic()
    for _ in range(WeChatModel.RATE_LIMIT):
        assert "openid" in jscode2session(model, model.issue_code("alice"), now=start)[2]
    limited = model.issue_code("alice")

    assert jscode2session(model, limited, now=start)[2]["errcode"] == 45011
    assert "openid" in jscode2session(model, model.issue_code("bob"), now=start)[2]
    after_a_minute = start + WeChatModel.RATE_WINDOW + 1
    assert "openid" in jscode2session(model, limited, now=after_a_minute)[2]


def test_wrong_credentials_come_first() -> None:
    model = WeChatModel()
    query = {"appid": "wx_other", "secret": "wrong", "js_code": model.issue_code()}

    assert ask(model, "GET", JSCODE2SESSION_PATH, query)[2]["errcode"] == 40013


def test_session_key_factory_hook() -> None:
    model = WeChatModel(session_key_factory=lambda: "pinned-key")

    assert login(model)["session_key"] == "pinned-key"
    assert login(WeChatModel())["session_key"] != "pinned-key"


def test_session_key_factory_on_the_class(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeWeChat()  # made first: a class attribute still reaches it
    monkeypatch.setattr(FakeWeChat, "session_key_factory", staticmethod(lambda: "class-key"))

    assert login(fake)["session_key"] == "class-key"


# -- access tokens ------------------------------------------------------------------------


def test_access_token_expires_after_its_ttl() -> None:
    model = WeChatModel()
    start = time.monotonic()
    token = stable_token(model, now=start)["access_token"]
    alice = login(model)

    assert (
        check_session(model, token, alice["openid"], alice["session_key"], now=start)["errcode"]
        == 0
    )
    expired = start + WeChatModel.ACCESS_TOKEN_TTL
    answer = check_session(model, token, alice["openid"], alice["session_key"], now=expired)
    assert answer["errcode"] == 42001


def test_plain_token_outlives_its_successor_by_the_overlap() -> None:
    model = WeChatModel()
    start = time.monotonic()
    query = {"grant_type": "client_credential", "appid": model.appid, "secret": model.secret}
    first = ask(model, "GET", TOKEN_PATH, query, now=start)[2]
    second = ask(model, "GET", TOKEN_PATH, query, now=start)[2]
    alice = login(model)

    assert first["expires_in"] == second["expires_in"] == WeChatModel.ACCESS_TOKEN_TTL
    within = start + WeChatModel.TOKEN_OVERLAP - 1
    past = start + WeChatModel.TOKEN_OVERLAP
    keys = (alice["openid"], alice["session_key"])
    assert check_session(model, first["access_token"], *keys, now=within)["errcode"] == 0
    assert check_session(model, first["access_token"], *keys, now=past)["errcode"] == 42001
    assert check_session(model, second["access_token"], *keys, now=past)["errcode"] == 0


def test_stable_token_counts_down_then_hands_out_the_next() -> None:
    model = WeChatModel()
    start = time.monotonic()
    first = stable_token(model, now=start)
    later = stable_token(model, now=start + 100)
    near_the_end = start + WeChatModel.ACCESS_TOKEN_TTL - WeChatModel.TOKEN_OVERLAP
    successor = stable_token(model, now=near_the_end)

    assert first["expires_in"] == WeChatModel.ACCESS_TOKEN_TTL
    assert later == {"access_token": first["access_token"], "expires_in": 7100}
    assert successor["access_token"] != first["access_token"]
    assert model.issued_access_tokens == [first["access_token"], successor["access_token"]]


def test_missing_unknown_and_replaced_tokens() -> None:
    model = WeChatModel()
    alice = login(model)
    keys = (alice["openid"], alice["session_key"])
    token = stable_token(model)["access_token"]
    forced = stable_token(model, force_refresh=True)["access_token"]

    assert check_session(model, "", *keys)["errcode"] == 41001
    assert check_session(model, token + "x", *keys)["errcode"] == 40001
    assert check_session(model, token, *keys)["errcode"] == 40001  # ended by force_refresh
    assert check_session(model, forced, *keys)["errcode"] == 0
    model.expire_access_tokens()
    assert check_session(model, forced, *keys)["errcode"] == 42001


# -- checksession, phone numbers ----------------------------------------------------------


def test_checksession_signature() -> None:
    model = WeChatModel()
    token = stable_token(model)["access_token"]
    old = login(model)
    new = login(model)
    bob = login(model, "bob")

    assert check_session(model, token, new["openid"], new["session_key"]) == {
        "errcode": 0,
        "errmsg": "ok",
    }
    assert check_session(model, token, old["openid"], old["session_key"])["errcode"] == 87009
    assert check_session(model, token, new["openid"], bob["session_key"])["errcode"] == 87009
    query = {"access_token": token, "openid": new["openid"], "signature": "x", "sig_method": "md5"}
    assert ask(model, "GET", CHECK_SESSION_PATH, query)[2]["errcode"] == 40097


def test_phone_code() -> None:
    model = WeChatModel()
    token = {"access_token": stable_token(model)["access_token"]}
    code = model.issue_phone_code("alice", phone="13912345678")

    status, content_type, answer = ask(model, "POST", PHONE_NUMBER_PATH, token, {"code": code})
    again = ask(model, "POST", PHONE_NUMBER_PATH, token, {"code": code})[2]

    assert (status, content_type) == (200, "application/json; encoding=utf-8")
    info = answer["phone_info"]
    assert info["phoneNumber"] == info["purePhoneNumber"] == "13912345678"
    assert info["countryCode"] == "86"
    assert info["watermark"]["appid"] == model.appid
    assert again["errcode"] == 40029
    bobs = model.issue_phone_code("bob")
    body = {"code": bobs, "openid": model.openid_for("alice")}
    assert ask(model, "POST", PHONE_NUMBER_PATH, token, body)[2]["errcode"] == 40029
    assert "phone_info" in ask(model, "POST", PHONE_NUMBER_PATH, token, {"code": bobs})[2]


# -- routing, faults, the call log --------------------------------------------------------


def test_unknown_path_and_wrong_method_take_no_fault() -> None:
    model = WeChatModel(latency=5)
    model.inject("close", path=STABLE_TOKEN_PATH)
    unknown = RecordedCall.of("GET", "/cgi-bin/nothing")
    wrong_method = RecordedCall.of("GET", STABLE_TOKEN_PATH)

    assert model.receive(unknown) == Arrival(unknown)
    assert model.receive(wrong_method) == Arrival(wrong_method)
    assert ask(model, "GET", "/cgi-bin/nothing") == (
        404,
        "application/json",
        {"errcode": 40066, "errmsg": "invalid url"},
    )
    status, content_type, body = ask(model, "GET", STABLE_TOKEN_PATH)
    assert (status, content_type, body["errcode"]) == (
        200,
        "application/json; encoding=utf-8",
        43002,
    )
    assert ask(model, "POST", CHECK_SESSION_PATH)[2]["errcode"] == 43001
    assert model.reply(model.receive(RecordedCall.of("POST", STABLE_TOKEN_PATH)), 0.0) is None


def test_arrival_takes_faults_in_order_and_says_how_long_to_wait() -> None:
    model = WeChatModel(latency=0.25)
    model.inject("errcode", errcode=-1)
    model.inject("slow", delay=3)
    call = RecordedCall.of("GET", JSCODE2SESSION_PATH)

    busy, slow, normal = (model.receive(call) for _ in range(3))

    assert busy.fault is not None and busy.fault.kind == "errcode"
    assert busy.wait == 0.25
    assert slow.fault is not None and slow.fault.kind == "slow"
    assert slow.wait == 3.25
    assert normal.fault is None and normal.wait == 0.25
    assert model.jscode2session_calls == 3


def test_errcode_fault_answers_instead_and_keeps_the_code() -> None:
    model = WeChatModel()
    code = model.issue_code()
    model.inject("errcode", errcode=40226, errmsg="high risk")

    assert jscode2session(model, code) == (
        200,
        "text/plain",
        {"errcode": 40226, "errmsg": "high risk"},
    )
    assert "openid" in jscode2session(model, code)[2]


def test_slow_fault_answers_normally() -> None:
    model = WeChatModel()
    model.inject("slow", delay=0)

    assert "openid" in jscode2session(model, model.issue_code())[2]


def test_recorded_call_keeps_the_query_as_sent() -> None:
    call = RecordedCall.of("GET", "/sns/jscode2session?js_code=a%26b&x=&js_code=c", b"{}")

    assert call.path == JSCODE2SESSION_PATH
    assert call.query == [("js_code", "a&b"), ("x", ""), ("js_code", "c")]
    assert call.raw_query == "js_code=a%26b&x=&js_code=c"
    assert call.body == b"{}"


def test_reset_forgets_faults_and_calls_and_restores_latency() -> None:
    model = WeChatModel(latency=0.5)
    login(model)
    model.inject("close")
    model.latency = 3

    model.reset()

    assert model.latency == 0.5
    assert model.calls == []
    assert model.receive(RecordedCall.of("GET", JSCODE2SESSION_PATH)).fault is None
