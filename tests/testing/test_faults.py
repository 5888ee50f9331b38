"""What each fault sends, decided without a server (the server acts it out; see
tests/test_fake_wechat.py for the same faults over real sockets)."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

from wxmiddleware.testing import FAULTS, RecordedCall
from wxmiddleware.testing.control import control_answer
from wxmiddleware.testing.faults import Fault, fault_reply, make_fault
from wxmiddleware.testing.model import WeChatModel


def reply_for(kind: str, **params: Any) -> Any:
    fault = make_fault(kind, params)
    return fault_reply(fault, decoy_openid="o-decoy", session_key_factory=lambda: "a2V5")


def test_every_kind_but_slow_replaces_the_answer() -> None:
    assert [kind for kind in FAULTS if not Fault(kind).replaces_answer] == ["slow"]
    assert Fault("slow", delay=2.5).wait == 2.5
    assert Fault("drip", delay=2.5).wait == 0
    with pytest.raises(ValueError):
        reply_for("slow")


def test_errcode() -> None:
    reply = reply_for("errcode", errcode=-1)

    assert (reply.status, reply.content_type) == (200, "text/plain")
    body = json.loads(reply.body)
    assert body["errcode"] == -1
    assert body["errmsg"].startswith("system error, rid: ")
    assert json.loads(reply_for("errcode", errcode=1, errmsg="m").body) == {
        "errcode": 1,
        "errmsg": "m",
    }


def test_http_status_and_html_pages() -> None:
    bad_gateway = reply_for("http_status", status=502)
    unnamed = reply_for("http_status", status=599)
    busy = reply_for("html")

    assert (bad_gateway.status, bad_gateway.content_type) == (502, "text/html")
    assert b"<title>502 Bad Gateway</title>" in bad_gateway.body
    assert b"<title>599</title>" in unnamed.body
    assert (busy.status, busy.content_type) == (200, "text/html; charset=utf-8")
    assert "系统繁忙" in busy.body.decode("utf-8")


def test_truncated_claims_more_than_it_sends() -> None:
    reply = reply_for("truncated")

    assert reply.body == b'{"openid": "o'
    assert reply.declared_length == 100
    assert reply.close


def test_huge_and_drip_are_success_shaped_and_exact_in_size() -> None:
    huge = reply_for("huge", size=1000)
    tiny = reply_for("huge", size=10)
    drip = reply_for("drip", interval=0.02, length=300)

    assert len(huge.body) == 1000 and huge.close and huge.drip_interval is None
    assert json.loads(huge.body)["openid"] == "o-decoy"
    assert json.loads(huge.body)["session_key"] == "a2V5"
    assert len(tiny.body) == 10
    assert len(drip.body) == 300 and drip.close and drip.drip_interval == 0.02
    assert json.loads(drip.body)["openid"] == "o-decoy"


def test_close_no_openid_and_invalid_json() -> None:
    no_openid = reply_for("no_openid")
    invalid = reply_for("invalid_json")

    assert reply_for("close") is None
    assert (no_openid.status, no_openid.body) == (200, b"{}")
    assert b"o-decoy" in invalid.body
    with pytest.raises(ValueError):
        json.loads(invalid.body)


def test_defaults() -> None:
    assert make_fault("huge", {}).size == 5 * 1024 * 1024
    assert (make_fault("drip", {}).interval, make_fault("drip", {}).length) == (0.5, 128)
    assert make_fault("slow", {}).delay == 10
    assert make_fault("http_status", {}).status == 500


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("teapot", {}),
        ("errcode", {}),
        ("errcode", {"errcode": True}),
        ("slow", {"delay": -1}),
        ("huge", {"size": 0}),
        ("http_status", {"status": 302}),
    ],
)
def test_make_fault_rejects_mistakes(kind: str, params: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_fault(kind, params)


def test_control_answers_drive_the_model() -> None:
    model = WeChatModel()

    def control(method: str, target: str, body: bytes = b"") -> Any:
        return control_answer(model, RecordedCall.of(method, target, body))

    status, answer = control("GET", "/fake/code?user=")  # blank: the default user
    assert status == 200 and isinstance(answer, dict) and len(answer["code"]) == 32
    status, answer = control("GET", "/fake/code?user=bob&appid=wxnotserved")
    assert status == 400 and "wxnotserved" in answer["error"]
    assert control("POST", "/fake/fault", b'{"fault": "close", "count": 2}') == (200, {"ok": True})
    assert control("GET", "/fake/calls") == (200, {"jscode2session": 0})
    assert control("POST", "/fake/fault", b'{"fault": "close", "path": "/x"}')[0] == 400
    assert control("GET", "/fake/reset") == (404, {"errcode": 40066, "errmsg": "invalid url"})
    assert control("POST", "/fake/reset") == (200, {"ok": True})
    assert model.calls == []
