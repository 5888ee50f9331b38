"""Each platform's documented error codes map onto one error family (invalid code 401, rate
limit 429, busy 503 after the one retry, misconfiguration 502), and every answer of the
wrong shape is a 502 that stores nothing (issue 25), through both adapters."""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Tuple

import pytest

from wxmiddleware._apps import WxApp
from wxmiddleware.core._providers import PROVIDERS
from wxmiddleware.testing import FakeWeChat

from ..middleware.drivers import Driver, assert_error
from .support import PLATFORMS, add_app, config_for, login
from .test_login import sessions_of

STATUS = {
    "invalid_code": 401,
    "rate_limited": 429,
    "busy": 503,
    "misconfigured": 502,
}
ERROR = {
    "invalid_code": "invalid_code",
    "rate_limited": "rate_limited",
    "busy": "upstream_busy",
    "misconfigured": "upstream_error",
}
#: Each platform's documented error codes and what each means: the table of
#: docs/platforms.md ("Errors"), from the pages its providers cite (QQ's code2Session;
#: Douyin's code2Session and its v1 error numbers; Baidu's OAuth errors; Kuaishou's
#: code2session result codes; Alipay's gateway error codes and isv.code-invalid). Written
#: here rather than read from the providers, so that a wrong entry in a provider fails.
DOCUMENTED: Dict[str, Dict[Any, str]] = {
    "qq": {40029: "invalid_code", 45011: "rate_limited", -1: "busy"},
    "douyin": {
        40018: "invalid_code",  # code
        40019: "invalid_code",  # anonymous_code
        -1: "busy",
        40014: "misconfigured",  # bad parameters
        40015: "misconfigured",  # appid
        40017: "misconfigured",  # secret
    },
    "baidu": {
        "invalid_grant": "invalid_code",
        "expired_token": "invalid_code",
        "invalid_client": "misconfigured",
        "unauthorized_client": "misconfigured",
        "invalid_request": "misconfigured",
    },
    "kuaishou": {240001: "invalid_code", 100: "misconfigured", 240002: "misconfigured"},
    "alipay": {
        "isv.code-invalid": "invalid_code",
        "isp.unknow-error": "busy",
        "aop.unknow-error": "busy",
        "isv.invalid-app-id": "misconfigured",
        "isv.invalid-signature": "misconfigured",
        "isv.missing-signature-key": "misconfigured",
        "isv.invalid-signature-type": "misconfigured",
        "isv.insufficient-isv-permissions": "misconfigured",
    },
}


@pytest.mark.parametrize(
    ("platform", "code", "kind"),
    [
        (platform, code, kind)
        for platform in PLATFORMS
        for code, kind in DOCUMENTED[platform].items()
    ],
)
def test_each_documented_error_code_maps_onto_the_error_family(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, platform: str, code: Any, kind: str
) -> None:
    one = add_app(fake_wechat, platform)
    app = make_app(config=config_for(fake_wechat, one))
    # A busy platform is asked twice (the one safe retry), then it is a 503.
    fake_wechat.platforms.inject(platform, "error", 2 if kind == "busy" else 1, code=code)
    issued = fake_wechat.platforms.issue_code(one.appid)
    reply = login(app, issued, one.appid)
    assert_error(reply, STATUS[kind], ERROR[kind])
    assert fake_wechat.platforms.calls_to(platform) == (2 if kind == "busy" else 1)
    if isinstance(code, int):
        assert reply.json()["errcode"] == code
    if kind == "rate_limited":
        assert reply.headers["retry-after"] == "60"
    if kind == "misconfigured":  # not the 502 of a code the platform does not document
        assert reply.json()["message"] == "The login service is misconfigured."
    # The fault spent nothing: the same code logs in now.
    assert login(app, issued, one.appid).status == 200


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_provider_maps_exactly_the_documented_error_codes(platform: str) -> None:
    assert dict(PROVIDERS[platform].errors) == DOCUMENTED[platform]


def test_alipays_code_20000_is_busy_whatever_its_sub_code(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat
) -> None:
    # The gateway's code 20000 means "service unavailable, retry later"
    # (open.alitrip.com/docs/doc.htm?articleId=105806): busy, with a sub_code the provider's
    # table does not list too.
    one = add_app(fake_wechat, "alipay")
    app = make_app(config=config_for(fake_wechat, one))
    fake_wechat.platforms.inject("alipay", "error", 2, code="isp.rpc-service-unavailable")
    reply = login(app, fake_wechat.platforms.issue_code(one.appid), one.appid)
    assert_error(reply, 503, "upstream_busy")
    assert fake_wechat.platforms.calls_to("alipay") == 2


@pytest.mark.parametrize("platform", ["qq", "douyin", "alipay"])
def test_a_busy_platform_is_retried_once(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, platform: str
) -> None:
    one = add_app(fake_wechat, platform)
    app = make_app(config=config_for(fake_wechat, one))
    busy = next(code for code, kind in DOCUMENTED[platform].items() if kind == "busy")
    fake_wechat.platforms.inject(platform, "error", code=busy)
    assert login(app, fake_wechat.platforms.issue_code(one.appid), one.appid).status == 200
    assert fake_wechat.platforms.calls_to(platform) == 2


BAD_ANSWERS: List[Tuple[str, Dict[str, Any]]] = [
    ("html", {}),
    ("http_status", {"status": 502}),
    ("http_status", {"status": 404}),
    ("invalid_json", {}),
    ("wrong_shape", {}),
    ("error", {"code": 99999}),
    ("error", {"code": "unheard.of-error"}),
]


def _speaks(platform: str, fault: str, params: Dict[str, Any]) -> bool:
    # An unknown error code in the platform's own kind: numbers, or words (Baidu, Alipay).
    return fault != "error" or isinstance(params["code"], str) == (platform in ("baidu", "alipay"))


@pytest.mark.parametrize(
    ("platform", "fault", "params"),
    [
        (platform, fault, params)
        for platform in PLATFORMS
        for fault, params in BAD_ANSWERS
        if _speaks(platform, fault, params)
    ],
)
def test_an_answer_of_the_wrong_shape_is_a_502_that_stores_nothing(
    make_app: Callable[..., Driver],
    fake_wechat: FakeWeChat,
    platform: str,
    fault: str,
    params: Dict[str, Any],
) -> None:
    one = add_app(fake_wechat, platform)
    app = make_app(config=config_for(fake_wechat, one))
    fake_wechat.platforms.inject(platform, fault, **params)
    issued = fake_wechat.platforms.issue_code(one.appid)
    assert_error(login(app, issued, one.appid), 502, "upstream_error")
    assert fake_wechat.platforms.calls_to(platform) == 1
    assert login(app, issued, one.appid).status == 200  # its code was released, not spent


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_success_without_a_user_id_stores_nothing(
    make_app: Callable[..., Driver], store: Any, fake_wechat: FakeWeChat, platform: str
) -> None:
    one = add_app(fake_wechat, platform)
    app = make_app(store=store, config=config_for(fake_wechat, one))
    bodies = {
        "qq": {"session_key": "k"},
        "douyin": {"err_no": 0, "data": {"openid": "", "session_key": "k"}},
        "baidu": {"session_key": "k"},
        "kuaishou": {"result": 1, "open_id": "o"},
        "alipay": {"alipay_system_oauth_token_response": {"open_id": "o"}, "sign": "bm9wZQ=="},
    }
    fake_wechat.platforms.inject(platform, "error", code=0)
    fake_wechat.platforms._error_body = lambda *args: (
        __import__("json").dumps(bodies[platform]).encode()
    )  # type: ignore[method-assign]
    issued = fake_wechat.platforms.issue_code(one.appid)
    assert_error(login(app, issued, one.appid), 502, "upstream_error")
    assert sessions_of(app, store, "o") == []
    assert sessions_of(app, store, fake_wechat.platforms.openid_for("alice", one.appid)) == []
    app.close_store(store)


@pytest.mark.parametrize(
    ("sender", "receiver"),
    [
        ("douyin", "qq"),
        ("qq", "douyin"),
        ("kuaishou", "baidu"),
        ("baidu", "alipay"),
        ("alipay", "kuaishou"),
    ],
)
def test_a_code_of_one_platform_sent_to_another_app_is_401(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, sender: str, receiver: str
) -> None:
    apps = {name: add_app(fake_wechat, name) for name in (sender, receiver)}
    app = make_app(config=config_for(fake_wechat, *apps.values()))
    code = fake_wechat.platforms.issue_code(apps[sender].appid)
    reply = login(app, code, apps[receiver].appid, several=True)
    assert_error(reply, 401, "invalid_code")
    assert fake_wechat.platforms.calls_to(receiver) == 1
    # And a WeChat code sent to the app: the platform refuses it too.
    reply = login(app, fake_wechat.issue_code("alice"), apps[receiver].appid, several=True)
    assert_error(reply, 401, "invalid_code")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_wrong_credentials_are_a_502_whose_log_names_the_platform_and_no_secret(
    make_app: Callable[..., Driver],
    fake_wechat: FakeWeChat,
    platform: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    one = add_app(fake_wechat, platform)
    if platform == "alipay":
        other_key = fake_wechat.platforms.add_app("alipay", "2021000000000009")
        assert other_key is not None
        wrong = WxApp(one.appid, other_key, "alipay", fake_wechat.platforms.alipay_public_key)
        leaked = other_key
    else:
        leaked = "the-wrong-secret-0123456789"
        wrong = WxApp(one.appid, leaked, platform)
    app = make_app(config=config_for(fake_wechat, one._replace(app=wrong)))
    caplog.set_level(logging.DEBUG)
    code = fake_wechat.platforms.issue_code(one.appid)
    reply = login(app, code, one.appid)
    assert_error(reply, 502, "upstream_error")
    assert reply.json()["message"] == "The login service is misconfigured." or platform == "qq"
    assert leaked not in caplog.text and leaked[:40] not in reply.text
    assert code not in caplog.text and code not in reply.text


def test_an_alipay_answer_that_alipay_did_not_sign_is_a_502(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat
) -> None:
    one = add_app(fake_wechat, "alipay")
    stranger = fake_wechat.platforms.add_app("alipay", "2021000000000008")
    assert stranger is not None
    # Alipay's public key replaced by another key's: the answer's signature fails.
    from cryptography.hazmat.primitives import serialization

    from wxmiddleware._alipay_keys import _private_key

    public = (
        _private_key(stranger)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    forged = one._replace(app=WxApp(one.appid, one.secret, "alipay", public.decode()))
    app = make_app(config=config_for(fake_wechat, forged))
    reply = login(app, fake_wechat.platforms.issue_code(one.appid), one.appid)
    assert_error(reply, 502, "upstream_error")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_no_secret_code_or_session_key_in_logs_or_answers(
    make_app: Callable[..., Driver],
    fake_wechat: FakeWeChat,
    platform: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    one = add_app(fake_wechat, platform)
    app = make_app(config=config_for(fake_wechat, one, expose_openid=True))
    caplog.set_level(logging.DEBUG)
    texts = []
    for fault, params in BAD_ANSWERS[:5]:
        fake_wechat.platforms.inject(platform, fault, **params)
        texts.append(login(app, fake_wechat.platforms.issue_code(one.appid), one.appid).text)
    code = fake_wechat.platforms.issue_code(one.appid)
    texts.append(login(app, code, one.appid).text)
    key = fake_wechat.platforms.session_key_for("alice", one.appid)
    everything = caplog.text + "".join(texts)
    assert one.secret not in everything
    if platform == "alipay":  # no piece of the private key either
        assert one.secret[100:160] not in everything
    assert code not in everything
    if key:
        assert key not in everything


def test_baidus_oauth_errors_read_under_http_400(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat
) -> None:
    one = add_app(fake_wechat, "baidu")
    app = make_app(config=config_for(fake_wechat, one))
    platforms = fake_wechat.platforms
    original = platforms._fault_reply

    def as_400(platform: str, fault: Any) -> Any:
        reply = original(platform, fault)
        return reply if reply is None else reply.__class__(400, reply.content_type, reply.body)

    platforms._fault_reply = as_400  # type: ignore[method-assign]
    platforms.inject("baidu", "error", code="invalid_grant")
    assert_error(login(app, platforms.issue_code(one.appid), one.appid), 401, "invalid_code")
    platforms.inject("baidu", "wrong_shape")
    assert_error(login(app, platforms.issue_code(one.appid), one.appid), 502, "upstream_error")


def test_alipay_signs_what_its_gateway_documents() -> None:
    from wxmiddleware.core._providers_alipay import alipay_member, alipay_signed_content

    params = {"b": "2", "a": "1", "sign": "x", "empty": "", "c": "x y"}
    assert alipay_signed_content(params) == b"a=1&b=2&c=x y"
    text = ' {"alipay_system_oauth_token_response" : {"open_id":"o","n":{"k":[1,2]}} ,"sign":"s"}'
    assert (
        alipay_member(text, "alipay_system_oauth_token_response")
        == '{"open_id":"o","n":{"k":[1,2]}}'
    )
    assert alipay_member(text, "sign") == '"s"'
    assert alipay_member("{}", "sign") is None
