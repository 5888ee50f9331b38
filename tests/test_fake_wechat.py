"""The fake WeChat server, exercised over real sockets the way the middleware's client uses it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
import requests

from wxmiddleware.testing import (
    CHECK_SESSION_PATH,
    FAULTS,
    JSCODE2SESSION_PATH,
    PHONE_NUMBER_PATH,
    STABLE_TOKEN_PATH,
    TOKEN_PATH,
    FakeWeChat,
    RecordedCall,
)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    # trust_env=False: a proxy set in the environment must not intercept loopback calls.
    with requests.Session() as session:
        session.trust_env = False
        yield session


def login_params(fake: FakeWeChat, code: str, **overrides: str) -> Dict[str, str]:
    params = {
        "appid": fake.appid,
        "secret": fake.secret,
        "js_code": code,
        "grant_type": "authorization_code",
    }
    params.update(overrides)
    return params


def jscode2session(http: requests.Session, fake: FakeWeChat, **params: Any) -> requests.Response:
    return http.get(fake.url + JSCODE2SESSION_PATH, params=params, timeout=5)


def login(http: requests.Session, fake: FakeWeChat, code: str, **overrides: str) -> Any:
    response = jscode2session(http, fake, **login_params(fake, code, **overrides))
    assert response.status_code == 200
    return response.json()


# -- success ------------------------------------------------------------------------------


def test_login_answers_like_wechat(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    response = jscode2session(
        http, fake_wechat, **login_params(fake_wechat, fake_wechat.issue_code())
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain"
    body = response.json()
    assert set(body) == {"openid", "session_key", "unionid"}
    assert body["openid"] == fake_wechat.openid_for("alice")
    assert body["unionid"] == fake_wechat.unionid_for("alice")
    assert len(body["openid"]) == 28
    assert body["openid"].startswith("o")
    assert body["unionid"].startswith("u")
    assert len(base64.b64decode(body["session_key"], validate=True)) == 16


def test_codes_look_like_wechat_codes(fake_wechat: FakeWeChat) -> None:
    codes = {fake_wechat.issue_code() for _ in range(20)}
    assert len(codes) == 20
    assert all(len(code) == 32 and code.isalnum() for code in codes)


def test_same_user_same_openid_fresh_session_key(
    fake_wechat: FakeWeChat, http: requests.Session
) -> None:
    first = login(http, fake_wechat, fake_wechat.issue_code("alice"))
    second = login(http, fake_wechat, fake_wechat.issue_code("alice"))

    assert first["openid"] == second["openid"]
    assert first["unionid"] == second["unionid"]
    assert first["session_key"] != second["session_key"]


def test_distinct_users_distinct_openids(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    alice = login(http, fake_wechat, fake_wechat.issue_code("alice"))
    bob = login(http, fake_wechat, fake_wechat.issue_code("bob"))

    assert alice["openid"] != bob["openid"]
    assert alice["unionid"] != bob["unionid"]


def test_openid_depends_on_appid_unionid_does_not() -> None:
    one, other = FakeWeChat("wx1111111111111111"), FakeWeChat("wx2222222222222222")

    assert one.openid_for("alice") != other.openid_for("alice")
    assert one.unionid_for("alice") == other.unionid_for("alice")


def test_without_unionid(http: requests.Session) -> None:
    with FakeWeChat(unionid=False) as fake:
        body = login(http, fake, fake.issue_code())

    assert fake.unionid_for("alice") is None
    assert set(body) == {"openid", "session_key"}


# -- errcodes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "errcode", "errmsg"),
    [
        ({"appid": "wx_not_ours"}, 40013, "invalid appid"),
        ({"appid": "wx_not_ours", "secret": "wrong"}, 40013, "invalid appid"),
        ({"secret": "wrong"}, 40125, "invalid appsecret"),
        ({"grant_type": "client_credential"}, 40002, "invalid grant_type"),
        ({"js_code": ""}, 40029, "invalid code"),
        ({"js_code": "0" * 32}, 40029, "invalid code"),
    ],
)
def test_rejections_are_http_200_with_errcode(
    fake_wechat: FakeWeChat,
    http: requests.Session,
    overrides: Dict[str, str],
    errcode: int,
    errmsg: str,
) -> None:
    response = jscode2session(
        http, fake_wechat, **login_params(fake_wechat, fake_wechat.issue_code(), **overrides)
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain"
    body = response.json()
    assert body["errcode"] == errcode
    assert body["errmsg"].startswith(errmsg + ", rid: ")
    assert "openid" not in body


def test_missing_code_is_invalid(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    params = login_params(fake_wechat, "")
    del params["js_code"]

    assert jscode2session(http, fake_wechat, **params).json()["errcode"] == 40029


def test_expired_code_is_invalid(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    code = fake_wechat.issue_code(ttl=0)

    assert login(http, fake_wechat, code)["errcode"] == 40029


def test_code_is_single_use(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    code = fake_wechat.issue_code()

    assert "openid" in login(http, fake_wechat, code)
    assert login(http, fake_wechat, code)["errcode"] == 40163


def test_rejected_login_does_not_use_the_code(
    fake_wechat: FakeWeChat, http: requests.Session
) -> None:
    code = fake_wechat.issue_code()

    assert login(http, fake_wechat, code, secret="wrong")["errcode"] == 40125
    assert "openid" in login(http, fake_wechat, code)


def test_minute_quota_per_user(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    for _ in range(FakeWeChat.RATE_LIMIT):
        assert "openid" in login(http, fake_wechat, fake_wechat.issue_code("alice"))
    limited = fake_wechat.issue_code("alice")

    assert login(http, fake_wechat, limited)["errcode"] == 45011
    assert "openid" in login(http, fake_wechat, fake_wechat.issue_code("bob"))
    fake_wechat.reset()
    assert "openid" in login(http, fake_wechat, limited)


def test_repeated_parameters_are_invalid(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    code = fake_wechat.issue_code()
    base = list(login_params(fake_wechat, code).items())
    url = fake_wechat.url + JSCODE2SESSION_PATH

    twice_code = http.get(url, params=[*base, ("js_code", code)], timeout=5).json()
    twice_appid = http.get(url, params=[*base, ("appid", "wxother")], timeout=5).json()

    assert twice_code["errcode"] == 40029
    assert twice_appid["errcode"] == 40013


def test_injection_by_concatenation_is_visible(
    fake_wechat: FakeWeChat, http: requests.Session
) -> None:
    code = fake_wechat.issue_code() + "&appid=wx_attacker"
    query = f"appid={fake_wechat.appid}&secret={fake_wechat.secret}&js_code={code}"
    response = http.get(
        f"{fake_wechat.url}{JSCODE2SESSION_PATH}?{query}&grant_type=authorization_code", timeout=5
    )

    assert response.json()["errcode"] == 40013
    assert ("appid", "wx_attacker") in fake_wechat.calls[-1].query


# -- call log -----------------------------------------------------------------------------


def test_call_log_keeps_pairs_as_sent(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    code = "a&b=c#d% e+f/码"
    jscode2session(http, fake_wechat, **login_params(fake_wechat, code))
    http.get(fake_wechat.url + "/sns/other?x=1", timeout=5)

    first, second = fake_wechat.calls
    assert isinstance(first, RecordedCall)
    assert first.method == "GET"
    assert first.path == JSCODE2SESSION_PATH
    assert first.query == [
        ("appid", fake_wechat.appid),
        ("secret", fake_wechat.secret),
        ("js_code", code),
        ("grant_type", "authorization_code"),
    ]
    assert "js_code=a%26b%3Dc%23d%25+e%2Bf%2F%E7%A0%81" in first.raw_query
    assert second.path == "/sns/other"
    assert fake_wechat.jscode2session_calls == 1


def test_unknown_path_is_404_json(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    response = http.get(fake_wechat.url + "/cgi-bin/nothing", timeout=5)

    assert response.status_code == 404
    assert response.json() == {"errcode": 40066, "errmsg": "invalid url"}


# -- faults -------------------------------------------------------------------------------


def test_errcode_fault_keeps_the_code(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    code = fake_wechat.issue_code()
    fake_wechat.inject("errcode", errcode=-1)
    fake_wechat.inject("errcode", errcode=40226, errmsg="high risk")

    busy = login(http, fake_wechat, code)
    risky = login(http, fake_wechat, code)

    assert busy["errcode"] == -1
    assert busy["errmsg"].startswith("system error")
    assert risky == {"errcode": 40226, "errmsg": "high risk"}
    assert "openid" in login(http, fake_wechat, code)


def test_faults_are_consumed_in_order(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    fake_wechat.inject("no_openid", count=2)
    fake_wechat.inject("errcode", errcode=-1)
    code = fake_wechat.issue_code()

    answers = [login(http, fake_wechat, code) for _ in range(4)]

    assert answers[:2] == [{}, {}]
    assert answers[2]["errcode"] == -1
    assert "openid" in answers[3]


@pytest.mark.parametrize("status", [500, 502])
def test_http_status_fault(fake_wechat: FakeWeChat, http: requests.Session, status: int) -> None:
    fake_wechat.inject("http_status", status=status)

    response = jscode2session(http, fake_wechat, **login_params(fake_wechat, "x"))

    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html>" in response.text


def test_html_fault(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    fake_wechat.inject("html")

    response = jscode2session(http, fake_wechat, **login_params(fake_wechat, "x"))

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


def test_truncated_fault(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    fake_wechat.inject("truncated")

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        jscode2session(http, fake_wechat, **login_params(fake_wechat, "x"))


def test_truncated_body_as_read_raw(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    fake_wechat.inject("truncated")
    response = http.get(fake_wechat.url + JSCODE2SESSION_PATH, stream=True, timeout=5)

    assert int(response.headers["Content-Length"]) > len(b'{"openid": "o')
    assert response.raw.read(13) == b'{"openid": "o'


def test_huge_fault(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    fake_wechat.inject("huge")
    fake_wechat.inject("huge", size=1000)

    default = jscode2session(http, fake_wechat, **login_params(fake_wechat, "x"))
    small = jscode2session(http, fake_wechat, **login_params(fake_wechat, "x"))

    assert len(default.content) == 5 * 1024 * 1024
    assert "openid" in default.json()
    assert len(small.content) == 1000
    assert small.json()["openid"] == fake_wechat.openid_for("fault")


def test_huge_fault_survives_a_client_that_stops_reading(
    fake_wechat: FakeWeChat, http: requests.Session
) -> None:
    fake_wechat.inject("huge")
    with http.get(fake_wechat.url + JSCODE2SESSION_PATH, stream=True, timeout=5) as response:
        assert len(response.raw.read(1024)) == 1024

    assert "openid" in login(http, fake_wechat, fake_wechat.issue_code())


def test_drip_fault_never_trips_a_read_timeout(
    fake_wechat: FakeWeChat, http: requests.Session
) -> None:
    fake_wechat.inject("drip", interval=0.02, length=20)
    started = time.monotonic()

    response = http.get(
        fake_wechat.url + JSCODE2SESSION_PATH,
        params=login_params(fake_wechat, "x"),
        timeout=(2, 0.2),  # each byte arrives well within the read timeout
    )

    assert time.monotonic() - started >= 19 * 0.02
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "20"
    assert len(response.content) == 20


def test_slow_fault_then_normal_answer(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    fake_wechat.inject("slow", delay=0.3)
    code = fake_wechat.issue_code()

    with pytest.raises(requests.exceptions.ReadTimeout):
        http.get(
            fake_wechat.url + JSCODE2SESSION_PATH,
            params=login_params(fake_wechat, code),
            timeout=(2, 0.1),
        )
    time.sleep(0.3)  # the slow answer went out to nobody, but it used the code

    assert login(http, fake_wechat, code)["errcode"] == 40163


def test_close_fault(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    fake_wechat.inject("close")

    with pytest.raises(requests.exceptions.ConnectionError):
        jscode2session(http, fake_wechat, **login_params(fake_wechat, "x"))
    assert fake_wechat.jscode2session_calls == 1


def test_no_openid_and_invalid_json_faults(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    fake_wechat.inject("no_openid")
    fake_wechat.inject("invalid_json")

    empty = jscode2session(http, fake_wechat, **login_params(fake_wechat, "x"))
    broken = jscode2session(http, fake_wechat, **login_params(fake_wechat, "x"))

    assert empty.status_code == 200
    assert empty.json() == {}
    assert broken.status_code == 200
    assert broken.headers["Content-Type"] == "text/plain"
    with pytest.raises(ValueError):
        json.loads(broken.content)


def test_every_fault_kind_is_documented() -> None:
    doc = FakeWeChat.inject.__doc__ or ""
    assert all(f'"{fault}"' in doc for fault in FAULTS)


@pytest.mark.parametrize(
    ("fault", "count", "params"),
    [
        ("teapot", 1, {}),
        ("errcode", 1, {}),
        ("errcode", 1, {"errcode": "-1"}),
        ("html", 1, {"status": 500}),
        ("http_status", 1, {"status": 200}),
        ("drip", 1, {"length": 0}),
        ("close", 0, {}),
    ],
)
def test_inject_rejects_mistakes(fault: str, count: int, params: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FakeWeChat().inject(fault, count, **params)


def test_latency_delays_answers(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    fake_wechat.latency = 0.2
    started = time.monotonic()

    body = login(http, fake_wechat, fake_wechat.issue_code())

    assert time.monotonic() - started >= 0.2
    assert "openid" in body


def test_reset(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    code = fake_wechat.issue_code()
    fake_wechat.latency = 5
    fake_wechat.inject("close")
    fake_wechat.reset()

    assert fake_wechat.latency == 0
    assert "openid" in login(http, fake_wechat, code)
    fake_wechat.reset()
    assert fake_wechat.calls == []
    assert fake_wechat.jscode2session_calls == 0


# -- control endpoints --------------------------------------------------------------------


def test_control_endpoints(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    url = fake_wechat.url

    code = http.get(url + "/fake/code", params={"user": "bob"}, timeout=5).json()["code"]
    assert login(http, fake_wechat, code)["openid"] == fake_wechat.openid_for("bob")

    fault = {"fault": "errcode", "count": 2, "errcode": -1}
    assert http.post(url + "/fake/fault", json=fault, timeout=5).json() == {"ok": True}
    assert login(http, fake_wechat, "x")["errcode"] == -1
    assert http.get(url + "/fake/calls", timeout=5).json() == {"jscode2session": 2}

    assert http.post(url + "/fake/reset", timeout=5).json() == {"ok": True}
    assert http.get(url + "/fake/calls", timeout=5).json() == {"jscode2session": 0}
    assert "openid" in login(http, fake_wechat, fake_wechat.issue_code())


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"count": 1}',
        b'{"fault": "teapot"}',
        b'{"fault": "slow", "delay": "x"}',
        b'{"fault": "close", "self": 1}',
    ],
)
def test_control_rejects_bad_faults(
    fake_wechat: FakeWeChat, http: requests.Session, body: bytes
) -> None:
    response = http.post(fake_wechat.url + "/fake/fault", data=body, timeout=5)

    assert response.status_code == 400
    assert response.json()["ok"] is False


def test_control_requests_are_not_logged(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    http.get(fake_wechat.url + "/fake/code", timeout=5)
    http.get(fake_wechat.url + "/fake/calls", timeout=5)

    assert fake_wechat.calls == []


# -- lifecycle ----------------------------------------------------------------------------


def test_url_and_port(fake_wechat: FakeWeChat) -> None:
    assert fake_wechat.port > 0
    assert fake_wechat.url == f"http://127.0.0.1:{fake_wechat.port}"
    assert fake_wechat.secret not in repr(fake_wechat)


def test_not_started() -> None:
    fake = FakeWeChat()
    with pytest.raises(RuntimeError):
        fake.url  # noqa: B018
    fake.stop()  # stopping a fake that never ran is harmless


def test_stop_is_prompt_with_a_slow_request_in_flight(http: requests.Session) -> None:
    fake = FakeWeChat().start()
    fake.inject("slow", delay=30)
    outcome: Dict[str, BaseException] = {}

    def call() -> None:
        try:
            jscode2session(http, fake, **login_params(fake, fake.issue_code()))
        except requests.RequestException as exc:
            outcome["error"] = exc

    client = threading.Thread(target=call)
    client.start()
    while fake.jscode2session_calls == 0:
        time.sleep(0.01)
    started = time.monotonic()
    fake.stop()
    stopped_in = time.monotonic() - started
    client.join(timeout=5)

    assert stopped_in < 2
    assert not client.is_alive()
    assert isinstance(outcome.get("error"), requests.ConnectionError)


def test_stop_with_idle_keep_alive_connection(http: requests.Session) -> None:
    with FakeWeChat() as fake:
        login(http, fake, fake.issue_code())  # leaves a pooled connection open
        started = time.monotonic()
    assert time.monotonic() - started < 2


def test_restart_after_stop(http: requests.Session) -> None:
    fake = FakeWeChat()
    for _ in range(2):
        with fake:
            assert "openid" in login(http, fake, fake.issue_code())


def test_command_line(tmp_path: Any) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "wxmiddleware.testing", "--port", "0", "--appid", "wxcli"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        url = first_line.rsplit(" ", 1)[-1].strip()
        with requests.Session() as http:
            http.trust_env = False
            code = http.get(url + "/fake/code", timeout=5).json()["code"]
            params = {
                "appid": "wxcli",
                "secret": "fake-secret-0123456789",
                "js_code": code,
                "grant_type": "authorization_code",
            }
            body = http.get(url + JSCODE2SESSION_PATH, params=params, timeout=5).json()
        assert first_line.startswith("FakeWeChat listening on http://127.0.0.1:")
        assert body["openid"] == FakeWeChat("wxcli").openid_for("alice")
    finally:
        process.terminate()
        process.wait(timeout=5)


# -- pytest fixtures ----------------------------------------------------------------------


def test_fake_wechat_fixture_is_running(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    assert "openid" in login(http, fake_wechat, fake_wechat.issue_code())


def test_fake_wechat_env_fixture(fake_wechat_env: FakeWeChat, tmp_path: Path) -> None:
    assert os.environ["WX_APPID"] == fake_wechat_env.appid
    assert os.environ["WX_SECRET"] == fake_wechat_env.secret
    assert os.environ["WX_API_BASE"] == fake_wechat_env.url
    # Sessions go to the test's own directory, never the default store in ~/.local/state.
    assert os.environ["WX_SESSION_STORE"] == f"sqlite:///{tmp_path / 'wx-sessions.sqlite3'}"


# -- server APIs: access tokens, checksession, phone numbers ------------------------------


def token_params(fake: FakeWeChat, **overrides: str) -> Dict[str, str]:
    return {
        "grant_type": "client_credential",
        "appid": fake.appid,
        "secret": fake.secret,
        **overrides,
    }


def plain_token(http: requests.Session, fake: FakeWeChat, **overrides: str) -> Any:
    return http.get(fake.url + TOKEN_PATH, params=token_params(fake, **overrides), timeout=5).json()


def stable_token(http: requests.Session, fake: FakeWeChat, **overrides: Any) -> Any:
    body = {**token_params(fake), "force_refresh": False, **overrides}
    return http.post(fake.url + STABLE_TOKEN_PATH, json=body, timeout=5).json()


def check_session(
    http: requests.Session,
    fake: FakeWeChat,
    token: str,
    openid: str,
    session_key: str,
    **extra: str,
) -> Any:
    signature = hmac.new(session_key.encode(), b"", hashlib.sha256).hexdigest()
    params = {
        "access_token": token,
        "openid": openid,
        "signature": signature,
        "sig_method": "hmac_sha256",
        **extra,
    }
    return http.get(fake.url + CHECK_SESSION_PATH, params=params, timeout=5).json()


def phone_number(http: requests.Session, fake: FakeWeChat, token: str, body: Any) -> Any:
    url = fake.url + PHONE_NUMBER_PATH
    return http.post(url, params={"access_token": token}, json=body, timeout=5).json()


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"appid": "wx_other"}, 40013),
        ({"secret": "wrong"}, 40125),
        ({"grant_type": "authorization_code"}, 40002),
    ],
)
def test_token_endpoints_check_credentials(
    fake_wechat: FakeWeChat, http: requests.Session, overrides: Dict[str, str], errcode: int
) -> None:
    assert plain_token(http, fake_wechat, **overrides)["errcode"] == errcode
    assert stable_token(http, fake_wechat, **overrides)["errcode"] == errcode
    assert fake_wechat.token_calls == 2
    assert fake_wechat.issued_access_tokens == []


def test_plain_token_replaces_the_previous_one_after_five_minutes(
    fake_wechat: FakeWeChat, http: requests.Session
) -> None:
    fake_wechat.TOKEN_OVERLAP = 0.3  # WeChat's five minutes, shortened
    first = plain_token(http, fake_wechat)
    assert first["expires_in"] == 7200
    second = plain_token(http, fake_wechat)
    assert second["access_token"] != first["access_token"]
    openid, key = login_user(http, fake_wechat)
    assert check_session(http, fake_wechat, first["access_token"], openid, key)["errcode"] == 0
    time.sleep(0.4)
    assert check_session(http, fake_wechat, first["access_token"], openid, key)["errcode"] == 42001
    assert check_session(http, fake_wechat, second["access_token"], openid, key)["errcode"] == 0


def test_stable_token_is_stable_until_its_last_minutes(
    fake_wechat: FakeWeChat, http: requests.Session
) -> None:
    first = stable_token(http, fake_wechat)
    again = stable_token(http, fake_wechat)
    assert again["access_token"] == first["access_token"]
    assert 7190 <= again["expires_in"] <= 7200
    assert plain_token(http, fake_wechat)["access_token"] != first["access_token"]
    assert stable_token(http, fake_wechat)["access_token"] == first["access_token"]  # isolated

    fake_wechat.TOKEN_OVERLAP = 7200.0  # as if fewer than five minutes were left
    successor = stable_token(http, fake_wechat)["access_token"]
    assert successor != first["access_token"]
    openid, key = login_user(http, fake_wechat)
    assert check_session(http, fake_wechat, first["access_token"], openid, key)["errcode"] == 0

    forced = stable_token(http, fake_wechat, force_refresh=True)["access_token"]
    assert forced != successor
    assert check_session(http, fake_wechat, successor, openid, key)["errcode"] == 40001
    assert check_session(http, fake_wechat, forced, openid, key)["errcode"] == 0


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (b"not json", 47001),
        (b"[]", 47001),
        (b'{"force_refresh": "yes"}', 47001),
        (b'{"appid": 1}', 40013),
    ],
)
def test_stable_token_needs_a_json_object(
    fake_wechat: FakeWeChat, http: requests.Session, body: bytes, errcode: int
) -> None:
    answer = http.post(fake_wechat.url + STABLE_TOKEN_PATH, data=body, timeout=5).json()
    assert answer["errcode"] == errcode


def test_expired_unknown_and_missing_tokens(
    fake_wechat: FakeWeChat, http: requests.Session
) -> None:
    token = stable_token(http, fake_wechat)["access_token"]
    openid, key = login_user(http, fake_wechat)
    assert check_session(http, fake_wechat, token + "x", openid, key)["errcode"] == 40001
    assert check_session(http, fake_wechat, "", openid, key)["errcode"] == 41001
    fake_wechat.expire_access_tokens()
    assert check_session(http, fake_wechat, token, openid, key)["errcode"] == 42001
    assert phone_number(http, fake_wechat, token, {"code": "x"})["errcode"] == 42001
    renewed = stable_token(http, fake_wechat)["access_token"]
    assert renewed != token
    assert check_session(http, fake_wechat, renewed, openid, key)["errcode"] == 0
    assert set(fake_wechat.issued_access_tokens) == {token, renewed}


def login_user(http: requests.Session, fake: FakeWeChat, user: str = "alice") -> Any:
    body = login(http, fake, fake.issue_code(user))
    return body["openid"], body["session_key"]


def test_checksession_accepts_only_the_latest_session_key(
    fake_wechat: FakeWeChat, http: requests.Session
) -> None:
    token = stable_token(http, fake_wechat)["access_token"]
    openid, old_key = login_user(http, fake_wechat)
    assert check_session(http, fake_wechat, token, openid, old_key) == {
        "errcode": 0,
        "errmsg": "ok",
    }
    _, new_key = login_user(http, fake_wechat)
    assert check_session(http, fake_wechat, token, openid, old_key)["errcode"] == 87009
    assert check_session(http, fake_wechat, token, openid, new_key)["errcode"] == 0
    _, bob_key = login_user(http, fake_wechat, "bob")
    assert check_session(http, fake_wechat, token, openid, bob_key)["errcode"] == 87009
    assert check_session(http, fake_wechat, token, "o-never-seen", new_key)["errcode"] == 87009
    wrong_method = check_session(http, fake_wechat, token, openid, new_key, sig_method="md5")
    assert wrong_method["errcode"] == 40097


def test_phone_codes_are_single_use(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    token = stable_token(http, fake_wechat)["access_token"]
    code = fake_wechat.issue_phone_code("alice", phone="13912345678")
    answer = phone_number(http, fake_wechat, token, {"code": code})
    assert answer["errcode"] == 0 and answer["errmsg"] == "ok"
    info = answer["phone_info"]
    assert info["phoneNumber"] == info["purePhoneNumber"] == "13912345678"
    assert info["countryCode"] == "86"
    assert info["watermark"]["appid"] == fake_wechat.appid
    assert abs(info["watermark"]["timestamp"] - time.time()) < 5
    assert phone_number(http, fake_wechat, token, {"code": code})["errcode"] == 40029
    assert phone_number(http, fake_wechat, token, {"code": "unknown"})["errcode"] == 40029
    assert phone_number(http, fake_wechat, token, {"kode": code})["errcode"] == 47001

    foreign = fake_wechat.issue_phone_code("bob", phone="2025550123", country_code="1")
    info = phone_number(http, fake_wechat, token, {"code": foreign})["phone_info"]
    assert (info["phoneNumber"], info["purePhoneNumber"]) == ("+12025550123", "2025550123")

    expired = fake_wechat.issue_phone_code(ttl=0)
    assert phone_number(http, fake_wechat, token, {"code": expired})["errcode"] == 40029
    someone_elses = fake_wechat.issue_phone_code("alice")
    body = {"code": someone_elses, "openid": fake_wechat.openid_for("bob")}
    assert phone_number(http, fake_wechat, token, body)["errcode"] == 40029
    assert fake_wechat.calls_to(PHONE_NUMBER_PATH) == 7


def test_server_apis_answer_wrong_methods_like_wechat(
    fake_wechat: FakeWeChat, http: requests.Session
) -> None:
    answer = http.get(fake_wechat.url + STABLE_TOKEN_PATH, timeout=5)
    assert (answer.status_code, answer.json()["errcode"]) == (200, 43002)
    answer = http.post(fake_wechat.url + CHECK_SESSION_PATH, timeout=5)
    assert answer.json()["errcode"] == 43001


def test_faults_for_another_path(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    fake_wechat.inject("errcode", errcode=-1, path=STABLE_TOKEN_PATH)
    assert "openid" in login(http, fake_wechat, fake_wechat.issue_code())  # untouched
    assert stable_token(http, fake_wechat)["errcode"] == -1
    assert "access_token" in stable_token(http, fake_wechat)
    with pytest.raises(ValueError):
        fake_wechat.inject("close", path="/cgi-bin/nothing")


def test_post_bodies_are_recorded(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    stable_token(http, fake_wechat)
    [call] = fake_wechat.calls
    assert (call.method, call.path) == ("POST", STABLE_TOKEN_PATH)
    assert json.loads(call.body)["force_refresh"] is False
    assert fake_wechat.secret not in repr(call)


def test_server_api_control_endpoints(fake_wechat: FakeWeChat, http: requests.Session) -> None:
    url = fake_wechat.url
    token = stable_token(http, fake_wechat)["access_token"]
    code = http.get(url + "/fake/phone_code", params={"phone": "13700000000"}, timeout=5).json()
    answer = phone_number(http, fake_wechat, token, {"code": code["code"]})
    assert answer["phone_info"]["purePhoneNumber"] == "13700000000"
    assert http.post(url + "/fake/expire_access_tokens", timeout=5).json() == {"ok": True}
    assert phone_number(http, fake_wechat, token, {"code": "x"})["errcode"] == 42001
    fault = {"fault": "errcode", "errcode": -1, "path": PHONE_NUMBER_PATH}
    assert http.post(url + "/fake/fault", json=fault, timeout=5).json() == {"ok": True}
    bad = {"fault": "close", "path": "/nowhere"}
    assert http.post(url + "/fake/fault", json=bad, timeout=5).status_code == 400


def test_command_line_serves_more_apps(tmp_path: Any) -> None:
    command = [sys.executable, "-m", "wxmiddleware.testing", "--port", "0", "--appid", "wxone"]
    process = subprocess.Popen(
        [*command, "--app", "wxtwo=second-secret-0123456789"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" ", 1)[-1].strip()
        with requests.Session() as http:
            http.trust_env = False
            code = http.get(url + "/fake/code", params={"appid": "wxtwo"}, timeout=5).json()
            params = {
                "appid": "wxtwo",
                "secret": "second-secret-0123456789",
                "js_code": code["code"],
                "grant_type": "authorization_code",
            }
            body = http.get(url + JSCODE2SESSION_PATH, params=params, timeout=5).json()
            unknown = http.get(url + "/fake/code", params={"appid": "wxthree"}, timeout=5)
        assert "openid" in body and "errcode" not in body
        assert unknown.status_code == 400
    finally:
        process.terminate()
        process.wait(timeout=10)
    bad = subprocess.run([*command, "--app", "wxtwo"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "APPID=SECRET" in bad.stderr
