"""Hostile input through both adapters: lone surrogates, deep nesting, JSON under a form's
content type, a login code replayed from a URL, and an ``on_login`` hook that fails.

Each answer is a 4xx from the error family (or the hook's 500), never an ERROR log line a
client can write at will, and no log line holds the code or the token.
"""

from __future__ import annotations

import base64
import logging
import os
from typing import Any, Callable, Dict, List, Tuple

import pytest

from wxmiddleware import AsyncMemoryStore, MemoryStore, WxSession
from wxmiddleware.testing import FakeWeChat

from ..wafer_support import pin_session_key
from .drivers import Driver, Reply, Request, assert_error
from .stubs import WSGI

FORM = "application/x-www-form-urlencoded"
SEND_JSON = "Content-Type: application/json"
DEEP = b"[" * 1500 + b"]" * 1500


@pytest.fixture(autouse=True)
def debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="wxmiddleware")


def no_error_lines(caplog: pytest.LogCaptureFixture) -> None:
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors


def refused_before_wechat(reply: Reply, fake: FakeWeChat, status: int, error: str) -> None:
    """A 4xx from the middleware itself: the app did not run, WeChat was not called."""
    assert_error(reply, status, error)
    assert reply.seen is None
    assert fake.jscode2session_calls == 0


# Lone surrogates: valid JSON ("\ud800"), valid percent-escapes, invalid text.

SURROGATE_LOGINS: Dict[str, Dict[str, Any]] = {
    "json-code": {"json": {"code": "\ud800"}},
    "json-code-inside": {"json": {"code": "ab\udfffcd"}},
    "json-alias": {"json": {"wxCode": "\udc80"}},
    "json-code-and-alias": {"json": {"code": "\ud83d", "wxCode": "\ud83d"}},
    "json-with-other-fields": {"json": {"code": "\ud800", "nickName": "x", "n": [1, 2]}},
    "form-code": {"body": b"code=%ED%A0%80", "content_type": FORM},
    "form-alias": {"body": b"wxCode=ab%ED%B3%BFcd", "content_type": FORM},
    "form-raw-bytes": {"body": b"code=\xed\xa0\x80", "content_type": FORM},
}


@pytest.mark.parametrize("request_args", SURROGATE_LOGINS.values(), ids=SURROGATE_LOGINS.keys())
def test_lone_surrogate_in_a_login_body_is_400(
    app: Driver,
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
    request_args: Dict[str, Any],
) -> None:
    reply = app.post("/wx/login", **request_args)
    refused_before_wechat(reply, fake_wechat, 400, "bad_request")
    no_error_lines(caplog)


@pytest.mark.parametrize(
    "query", ["code=%ED%A0%80", "wxCode=%ED%B3%BF", "code=ab%ED%A0%80cd&other=1"]
)
def test_lone_surrogate_in_a_query_string_login_is_400(
    make_app: Callable[..., Driver],
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
    query: str,
) -> None:
    app = make_app(allow_get_login=True)
    reply = app.raw("GET", "/wx/login?" + query)
    refused_before_wechat(reply, fake_wechat, 400, "bad_request")
    no_error_lines(caplog)


@pytest.mark.parametrize(
    ("headers", "wafer"),
    [
        ([("X-WX-Code", "\udced\udca0\udc80")], True),
        ([("X-WX-Code", "abc\ud800")], True),
        ([("X-WX-Code", "abc"), ("X-WX-Encrypted-Data", "QUJD\udc80"), ("X-WX-IV", "QQ==")], True),
        ([("X-WX-Code", "abc"), ("X-WX-Encrypted-Data", "QUJD"), ("X-WX-IV", "\ud800")], True),
        ([("3rd-session", "\udc80" * 43)], False),
        ([("3rd-session", "A" * 42 + "\udcff")], False),
        ([("X-WX-Skey", "abc\ud800def")], False),
        ([("3rd-session", "A" * 43), ("X-WX-Skey", "\udc80")], False),
    ],
    ids=[
        "wafer-code-escaped",
        "wafer-code",
        "wafer-data",
        "wafer-iv",
        "token",
        "token-tail",
        "skey",
        "token-and-skey",
    ],
)
def test_lone_surrogate_in_a_header(
    make_app: Callable[..., Driver],
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
    headers: List[Tuple[str, str]],
    wafer: bool,
) -> None:
    """A WSGI server that decodes with ``surrogateescape`` hands the middleware a lone
    surrogate: ``400``. ASGI headers are bytes, which the middleware reads as latin-1, so
    the same header arrives as its UTF-8 bytes: an ordinary wrong value (a 4xx)."""
    app = make_app()
    path = "/wx/login" if wafer else "/api/me"
    reply = app.raw("GET", path, headers)
    if app.name == WSGI:
        refused_before_wechat(reply, fake_wechat, 400, "bad_request")
    else:
        assert 400 <= reply.status < 500 and reply.seen is None, reply.body
    if wafer:  # a Wafer login's every error leads with "code": -1
        assert reply.json()["code"] == -1
    no_error_lines(caplog)


# Deep nesting: RecursionError is not a ValueError.

DEEP_LOGINS: Dict[str, Dict[str, Any]] = {
    "code": {"body": b'{"code": ' + DEEP + b"}", "content_type": "application/json"},
    "alias": {"body": b'{"wxCode": ' + DEEP + b"}", "content_type": "application/json"},
    "other-field": {"body": b'{"code": "abc", "x": ' + DEEP + b"}"},
    "top-level": {"body": b"[" * 2000 + b"]" * 2000, "content_type": "application/json"},
    "no-content-type": {"body": b'{"code": ' + DEEP + b"}"},
    "json-suffix": {"body": b'{"code": ' + DEEP + b"}", "content_type": "application/vnd+json"},
    "form": {"body": b'{"code": ' + DEEP + b"}", "content_type": FORM},
}


@pytest.mark.parametrize("request_args", DEEP_LOGINS.values(), ids=DEEP_LOGINS.keys())
def test_deeply_nested_login_body_is_400(
    app: Driver,
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
    request_args: Dict[str, Any],
) -> None:
    reply = app.post("/wx/login", **request_args)
    refused_before_wechat(reply, fake_wechat, 400, "bad_request")
    no_error_lines(caplog)


def test_deeply_nested_objects_within_a_larger_body_limit_are_400(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(max_body_bytes=64 * 1024)
    body = b'{"code": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"
    reply = app.post("/wx/login", body=body, content_type="application/json")
    refused_before_wechat(reply, fake_wechat, 400, "bad_request")
    no_error_lines(caplog)


def test_deeply_nested_chunked_body_is_400(
    app: Driver, fake_wechat: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    body = b'{"code": ' + DEEP + b"}"
    reply = app.raw("POST", "/wx/login", [("Content-Type", "application/json")], body, True)
    refused_before_wechat(reply, fake_wechat, 400, "bad_request")
    no_error_lines(caplog)


# Encrypted user info of a Wafer login: the decrypted JSON is client data too.


def encrypt_raw(session_key: str, plain: bytes) -> Tuple[str, str]:
    """``(encryptedData, iv)`` of ``plain`` as WeChat makes them: AES-128-CBC, PKCS#7."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.padding import PKCS7

    iv = os.urandom(16)
    padder = PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(base64.b64decode(session_key)), modes.CBC(iv)).encryptor()
    data = encryptor.update(padded) + encryptor.finalize()
    return base64.b64encode(data).decode(), base64.b64encode(iv).decode()


@pytest.mark.parametrize(
    "plain",
    [
        b'{"nickName": ' + DEEP + b', "watermark": {"appid": "%s"}}',
        b"[" * 3000 + b"]" * 3000,
        b'{"nickName": "\\ud800", "watermark": {"appid": "%s"}}',
        b'{"\\udfff": 1, "watermark": {"appid": "%s"}}',
    ],
    ids=["deep-field", "deep-top", "surrogate-value", "surrogate-key"],
)
def test_undecodable_user_info_of_a_wafer_login_is_400(
    make_app: Callable[..., Driver],
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    plain: bytes,
) -> None:
    pytest.importorskip("cryptography")
    session_key = pin_session_key(monkeypatch)
    app = make_app(max_body_bytes=64 * 1024)
    data, iv = encrypt_raw(session_key, plain.replace(b"%s", fake_wechat.appid.encode()))
    code = fake_wechat.issue_code()
    headers = [("X-WX-Code", code), ("X-WX-Encrypted-Data", data), ("X-WX-IV", iv)]
    reply = app.get("/wx/login", headers=headers)
    assert_error(reply, 400, "decrypt_failed")
    assert reply.json()["code"] == -1 and reply.json()["errcode"] == -41003
    assert session_key not in reply.text
    no_error_lines(caplog)
    assert code not in caplog.text and session_key not in caplog.text


# A code that came in a URL sits in access logs: no idempotent replay.


def test_a_code_from_a_url_is_not_replayed(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(allow_get_login=True)
    code = fake_wechat.issue_code()
    first = app.get("/wx/login", query={"code": code})
    assert first.status == 200, first.body
    token = first.json()["3rd_session"]
    # Replayed from the log, as a GET or as a POST, in either field: WeChat refuses it.
    for replay in (
        app.get("/wx/login", query={"code": code}),
        app.get("/wx/login", query={"wxCode": code}),
        app.post("/wx/login", json={"code": code}),
        app.post("/wx/login", form={"wxCode": code}),
    ):
        assert_error(replay, 401, "invalid_code")
        assert token not in replay.text
    assert fake_wechat.jscode2session_calls == 5
    assert app.me(token).status == 200  # the victim's session is untouched
    assert code not in caplog.text and token not in caplog.text
    no_error_lines(caplog)


def test_a_posted_code_replayed_in_a_url_is_invalid(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat
) -> None:
    app = make_app(allow_get_login=True)
    code = fake_wechat.issue_code()
    token = app.post("/wx/login", json={"code": code}).json()["3rd_session"]
    replay = app.get("/wx/login", query={"code": code})
    assert_error(replay, 401, "invalid_code")
    assert token not in replay.text
    # The body's own retry keeps its idempotent answer.
    assert app.post("/wx/login", json={"code": code}).json()["3rd_session"] == token


def test_a_wafer_get_login_is_still_idempotent(app: Driver, fake_wechat: FakeWeChat) -> None:
    """A Wafer client logs in with GET, but its code travels in a header, not the URL."""
    code = fake_wechat.issue_code()
    first = app.get("/wx/login", headers=[("X-WX-Code", code)])
    second = app.get("/wx/login", headers=[("X-WX-Code", code)])
    assert first.status == second.status == 200, second.body
    assert first.json()["data"]["skey"] == second.json()["data"]["skey"]
    assert fake_wechat.jscode2session_calls == 1


# JSON under a form's (or another) content type: say which header to send.


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"code": "%s"}', FORM),  # curl -X POST /wx/login -d '{"code": "..."}'
        (b'{"wxCode": "%s"}', FORM),
        (b'\n  {"code": "%s"}', FORM),
        (b'["%s"]', FORM),
        (b'{"code": "%s"}', FORM + "; charset=utf-8"),
        (b'{"code": "%s"}', "text/plain"),
        (b'{"code": "%s"}', "text/plain; charset=utf-8"),
        (b'{code: "%s"}', FORM),  # shell quoting ate the key's quotes
    ],
)
def test_json_body_under_another_content_type_names_the_header(
    app: Driver,
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str,
) -> None:
    code = fake_wechat.issue_code()
    sent = body.replace(b"%s", code.encode())
    reply = app.post("/wx/login", body=sent, content_type=content_type)
    refused_before_wechat(reply, fake_wechat, 400, "bad_request")
    assert SEND_JSON in reply.json()["message"]
    assert code not in reply.text and code not in caplog.text
    no_error_lines(caplog)
    # The code was not spent: sent as JSON, it logs in.
    assert app.post("/wx/login", json={"code": code}).status == 200


def test_another_media_type_is_415_naming_the_header(app: Driver) -> None:
    reply = app.post("/wx/login", body=b"<code>x</code>", content_type="application/xml")
    assert_error(reply, 415, "unsupported_media_type")
    assert SEND_JSON in reply.json()["message"]


def test_a_real_form_still_logs_in(app: Driver, fake_wechat: FakeWeChat) -> None:
    reply = app.post(
        "/wx/login", body=b"code=" + fake_wechat.issue_code().encode(), content_type=FORM
    )
    assert reply.status == 200, reply.body


# An on_login hook that fails: a traceback in the log, no session left behind.


def shared_memory_store(adapter: str) -> Tuple[MemoryStore, Any]:
    """A memory store the test reads synchronously, and the store the adapter gets."""
    store = MemoryStore()
    return store, (store if adapter == WSGI else AsyncMemoryStore(store))


def test_a_failing_hook_leaves_no_session_and_logs_its_traceback(
    make_app: Callable[..., Driver],
    adapter: str,
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sessions: List[WxSession] = []

    def broken_hook(session: WxSession, request: Request) -> None:
        sessions.append(session)
        raise KeyError("a bug in the hook")

    store, given = shared_memory_store(adapter)
    app = make_app(store=given, on_login=broken_hook)
    code = fake_wechat.issue_code("carol")
    reply = app.post("/wx/login", json={"code": code})
    assert_error(reply, 500, "internal_error")
    assert "a bug" not in reply.text and "Traceback" not in reply.text
    assert "3rd_session" not in reply.json()
    [session] = sessions
    # The session the login made was ended before the answer.
    assert store.sessions_for(session.openid) == []
    [record] = [r for r in caplog.records if r.getMessage() == "internal error: KeyError"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)
    assert "broken_hook" in caplog.text and "Traceback" in caplog.text
    # A retry of the code finds no session: the client calls wx.login() again.
    assert_error(app.post("/wx/login", json={"code": code}), 401, "invalid_code")
    for secret in (code, session.session_key, fake_wechat.secret):
        assert secret not in caplog.text


def test_a_failing_hook_on_a_retry_keeps_the_first_answers_session(
    make_app: Callable[..., Driver], adapter: str, fake_wechat: FakeWeChat
) -> None:
    """Only the login that made a session ends it: a retry whose hook fails leaves the
    session the first answer handed out."""
    calls: List[str] = []

    def hook_failing_on_retry(session: WxSession, request: Request) -> None:
        calls.append(session.openid)
        if len(calls) > 1:
            raise RuntimeError("second call")

    store, given = shared_memory_store(adapter)
    app = make_app(store=given, on_login=hook_failing_on_retry)
    code = fake_wechat.issue_code()
    token = app.post("/wx/login", json={"code": code}).json()["3rd_session"]
    assert_error(app.post("/wx/login", json={"code": code}), 500, "internal_error")
    assert app.me(token).status == 200
    assert len(store.sessions_for(calls[0])) == 1


def test_a_failing_hook_of_a_wafer_login_leaves_no_session(
    make_app: Callable[..., Driver], adapter: str, fake_wechat: FakeWeChat
) -> None:
    openids: List[str] = []

    def broken_hook(session: WxSession, request: Request) -> None:
        openids.append(session.openid)
        raise ValueError("boom")

    store, given = shared_memory_store(adapter)
    app = make_app(store=given, on_login=broken_hook)
    reply = app.get("/wx/login", headers=[("X-WX-Code", fake_wechat.issue_code())])
    assert_error(reply, 500, "internal_error")
    assert reply.json()["code"] == -1
    assert store.sessions_for(openids[0]) == []


def test_unexpected_errors_are_never_shown_to_the_client(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    def leaky_hook(session: WxSession, request: Request) -> None:
        raise RuntimeError(f"hook saw {session.session_key}")

    app = make_app(on_login=leaky_hook)
    reply = app.post("/wx/login", json={"code": fake_wechat.issue_code()})
    assert_error(reply, 500, "internal_error")
    assert reply.json() == {"error": "internal_error", "message": reply.json()["message"]}
    assert "hook saw" not in reply.text and "RuntimeError" not in reply.text
