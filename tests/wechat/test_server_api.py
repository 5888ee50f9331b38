"""The server APIs without I/O: requests, replies, and the access-token and call flows.

The flows are driven here by a scripted performer (a MemoryStore for the shared state and a
function standing in for WeChat), so every decision is checked without a socket.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

import pytest

from wxmiddleware._perform import SyncPerformer
from wxmiddleware.config import WxConfig
from wxmiddleware.core import Effect, Flow, HttpCall, Sleep, StoreCall
from wxmiddleware.crypto import session_signature
from wxmiddleware.errors import (
    BadRequest,
    InvalidCode,
    RateLimited,
    UpstreamBusy,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    WxError,
)
from wxmiddleware.session import WxSession
from wxmiddleware.stores import MemoryStore
from wxmiddleware.wechat._access_token import (
    AccessToken,
    TokenPolicy,
    TokenReply,
    access_token_flow,
    access_token_request,
    invalidate_flow,
    parse_access_token,
)
from wxmiddleware.wechat._api_login import check_session_request, parse_check_session
from wxmiddleware.wechat._api_replies import AccessTokenRejected, api_error
from wxmiddleware.wechat._api_user_info import parse_phone_number, phone_number_request
from wxmiddleware.wechat._paths import (
    CHECK_SESSION_PATH,
    PHONE_NUMBER_PATH,
    STABLE_TOKEN_PATH,
    TOKEN_PATH,
)
from wxmiddleware.wechat._protocol import ApiRequest
from wxmiddleware.wechat._server_api import api_call_flow

CONFIG = WxConfig(appid="wxappid", secret="s3cret-value", api_base="http://127.0.0.1:9/base/")
POLICY = TokenPolicy(CONFIG)
SESSION = WxSession("o-alice", "c2Vzc2lvbi1rZXktMTIzNA==", None, 0.0, 4e9)


def reply(**fields: Any) -> Tuple[int, bytes]:
    return 200, json.dumps(fields).encode()


# --- requests ---


def test_stable_token_request() -> None:
    request = access_token_request(CONFIG)
    assert (request.method, request.path, request.with_token) == ("POST", STABLE_TOKEN_PATH, False)
    assert request.body == {
        "grant_type": "client_credential",
        "appid": "wxappid",
        "secret": "s3cret-value",
        "force_refresh": False,
    }
    assert request.query(None) == {}
    assert request.url(CONFIG) == "http://127.0.0.1:9/base/cgi-bin/stable_token"
    forced = access_token_request(CONFIG, force_refresh=True)
    assert forced.body is not None and forced.body["force_refresh"] is True


def test_plain_token_request() -> None:
    request = access_token_request(CONFIG, stable=False)
    assert (request.method, request.path, request.body) == ("GET", TOKEN_PATH, None)
    assert request.query(None) == {
        "grant_type": "client_credential",
        "appid": "wxappid",
        "secret": "s3cret-value",
    }


def test_check_session_request_signs_instead_of_sending_the_key() -> None:
    request = check_session_request(SESSION)
    assert (request.method, request.path) == ("GET", CHECK_SESSION_PATH)
    assert request.query("TOKEN") == {
        "access_token": "TOKEN",
        "openid": "o-alice",
        "signature": session_signature(SESSION),
        "sig_method": "hmac_sha256",
    }
    assert SESSION.session_key not in repr(request.query("TOKEN"))


def test_phone_number_request() -> None:
    request = phone_number_request("phone-code")
    assert (request.method, request.path, request.body) == (
        "POST",
        PHONE_NUMBER_PATH,
        {"code": "phone-code"},
    )
    with pytest.raises(ValueError):
        request.query(None)  # a server API call never leaves without its token


@pytest.mark.parametrize("code", ["", "   ", "x" * 513, None, 5])
def test_malformed_phone_code_is_a_bad_request(code: Any) -> None:
    with pytest.raises(BadRequest):
        phone_number_request(code)


def test_reprs_hide_secrets() -> None:
    shown = repr(access_token_request(CONFIG, stable=False)) + repr(access_token_request(CONFIG))
    phone = phone_number_request("the-phone-code")
    shown += repr(HttpCall(phone.method, phone.url(CONFIG), phone.query("THE-TOKEN"), phone.body))
    shown += repr(TokenReply("THE-TOKEN", 7200)) + repr(AccessToken("THE-TOKEN", 1.0, 1.0))
    shown += repr(StoreCall("set_value", ("n", "THE-TOKEN", 1.0)))
    shown += repr(StoreCall("release_lock", ("n", "owner-token")))
    for secret in ("s3cret-value", "the-phone-code", "THE-TOKEN", "owner-token"):
        assert secret not in shown


# --- replies ---


def test_parse_access_token() -> None:
    assert parse_access_token(*reply(access_token="T", expires_in=7200)) == TokenReply("T", 7200)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"access_token": "T"},
        {"access_token": "", "expires_in": 7200},
        {"access_token": "T", "expires_in": 0},
        {"access_token": "T", "expires_in": True},
        {"access_token": 5, "expires_in": 7200},
    ],
)
def test_unusable_token_replies_are_502(fields: Dict[str, Any]) -> None:
    with pytest.raises(UpstreamError) as info:
        parse_access_token(*reply(**fields))
    assert info.value.status == 502


def test_parse_check_session() -> None:
    assert parse_check_session(*reply(errcode=0, errmsg="ok")) is True
    assert parse_check_session(*reply(errcode=87009, errmsg="invalid signature")) is False
    with pytest.raises(AccessTokenRejected):
        parse_check_session(*reply(errcode=40001, errmsg="invalid credential"))
    with pytest.raises(UpstreamError):
        parse_check_session(500, b"<html></html>")


def test_parse_phone_number() -> None:
    info = {
        "phoneNumber": "13800138000",
        "purePhoneNumber": "13800138000",
        "countryCode": "86",
        "watermark": {"timestamp": 1637744274, "appid": "wxappid"},
    }
    assert parse_phone_number(*reply(errcode=0, errmsg="ok", phone_info=info)) == info
    with pytest.raises(InvalidCode) as invalid:
        parse_phone_number(*reply(errcode=40029, errmsg="invalid code"))
    assert invalid.value.status == 401
    for fields in ({"errcode": 0}, {"phone_info": []}, {"phone_info": {"phoneNumber": 1}}):
        with pytest.raises(UpstreamError):
            parse_phone_number(*reply(**fields))


@pytest.mark.parametrize(
    ("errcode", "error", "status"),
    [
        (40001, AccessTokenRejected, 502),
        (40014, AccessTokenRejected, 502),
        (42001, AccessTokenRejected, 502),
        (-1, UpstreamBusy, 503),
        (40029, InvalidCode, 401),
        (45011, RateLimited, 429),
        (40013, UpstreamError, 502),
        (40125, UpstreamError, 502),
        (40164, UpstreamError, 502),
        (99999, UpstreamError, 502),
    ],
)
def test_errcodes(errcode: int, error: Type[WxError], status: int) -> None:
    mapped = api_error(errcode, "whatever")
    assert type(mapped) is error
    assert (mapped.status, mapped.errcode) == (status, errcode)


def test_misconfiguration_tells_the_operator_not_the_client() -> None:
    secret = api_error(40125, "invalid appsecret")
    assert "WX_SECRET" in (secret.detail or "") and "secret" not in secret.message.lower()
    whitelist = api_error(40164, "invalid ip 1.2.3.4, not in whitelist")
    assert "whitelist" in (whitelist.detail or "")


# --- the token record ---


def test_token_record() -> None:
    token = AccessToken.issued(TokenReply("T", 7200), 1000.0, 300.0)
    assert (token.expires_at, token.refresh_at) == (8200.0, 7900.0)
    assert AccessToken.from_record(token.to_record()) == token
    assert token.fresh(7899.0) and not token.fresh(7900.0)
    assert token.usable(8139.0) and not token.usable(8141.0)
    # A short lifetime is refreshed half-way, not on every call.
    short = AccessToken.issued(TokenReply("T", 200), 1000.0, 300.0)
    assert short.refresh_at == 1100.0
    for record in (None, "", "not json", "[]", '{"token": "T"}'):
        assert AccessToken.from_record(record) is None


def test_lock_outlives_a_fetch() -> None:
    slow = TokenPolicy(WxConfig(appid="wx", secret="s", connect_timeout=2, read_timeout=5))
    assert slow.lock_ttl > 2 * (2 + 5)
    assert TokenPolicy(CONFIG).name == TokenPolicy(CONFIG, stable=False).name


# --- the flows, against a scripted world ---


Responder = Callable[[ApiRequest, Optional[str]], Tuple[int, bytes]]


class World:
    """A MemoryStore for the shared state, a scripted WeChat and a fake monotonic clock.

    The package's :class:`SyncPerformer` drives each flow; a ``Sleep`` only moves the clock.
    """

    def __init__(self, respond: Responder, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store = MemoryStore()
        self.respond = respond
        self.effects: List[Effect] = []
        self.sent: List[Tuple[str, Optional[str]]] = []
        self.on_wait: Callable[[], None] = lambda: None
        self.clock = time.monotonic()
        self.performer: SyncPerformer[None] = SyncPerformer(self.store, self)
        monkeypatch.setattr(time, "monotonic", lambda: self.clock)

    def run(self, flow: Flow[Any]) -> Any:
        return self.performer.run(self._watched(flow))

    def _watched(self, flow: Flow[Any]) -> Flow[Any]:
        try:
            effect = next(flow)
            while True:
                self.effects.append(effect)
                if isinstance(effect, Sleep):
                    self.clock += effect.seconds
                    self.on_wait()
                    effect = flow.send(None)
                    continue
                try:
                    result = yield effect
                except Exception as error:
                    effect = flow.throw(error)
                else:
                    effect = flow.send(result)
        except StopIteration as stop:
            return stop.value

    def request(self, call: HttpCall) -> Tuple[int, bytes]:
        """The transport: back to the ApiRequest and token that WeChat would see."""
        path = call.url[len(CONFIG.api_base) :]
        token = call.params.get("access_token")
        rest = {name: value for name, value in call.params.items() if name != "access_token"}
        self.sent.append((path, token))
        return self.respond(
            ApiRequest(call.method, path, rest, call.body, token is not None), token
        )

    def store_token(self, value: str, expires_in: int = 7200, age: float = 0.0) -> None:
        issued = AccessToken.issued(TokenReply(value, expires_in), time.time() - age, 300.0)
        self.store.set_value(POLICY.name, issued.to_record(), expires_in - age)

    def kinds(self) -> List[str]:
        return [e.op if isinstance(e, StoreCall) else type(e).__name__ for e in self.effects]


def wechat(tokens: List[str], api: Optional[Callable[[Optional[str]], Tuple[int, bytes]]] = None):
    """A scripted WeChat: each token request gets the next of ``tokens``; ``api`` the rest."""
    issued = iter(tokens)

    def respond(request: ApiRequest, access_token: Optional[str]) -> Tuple[int, bytes]:
        if not request.with_token:
            return reply(access_token=next(issued), expires_in=7200)
        assert api is not None
        return api(access_token)

    return respond


def test_a_fresh_shared_token_costs_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(wechat([]), monkeypatch)
    world.store_token("T1")
    assert world.run(access_token_flow(POLICY)) == "T1"
    assert world.kinds() == ["get_value"]


def test_no_token_fetches_one_under_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(wechat(["T1"]), monkeypatch)
    assert world.run(access_token_flow(POLICY)) == "T1"
    assert world.kinds() == [
        "get_value",
        "acquire_lock",
        "get_value",  # another process may have stored one meanwhile
        "HttpCall",
        "set_value",
        "release_lock",
    ]
    assert world.sent == [(STABLE_TOKEN_PATH, None)]
    stored = AccessToken.from_record(world.store.get_value(POLICY.name))
    assert stored is not None and stored.value == "T1"
    assert world.store.acquire_lock(POLICY.name, 1) is not None  # released


def test_token_due_for_refresh_is_refreshed(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(wechat(["T2"]), monkeypatch)
    world.store_token("T1", age=7000)  # 200 s left: inside the refresh margin
    assert world.run(access_token_flow(POLICY)) == "T2"


def test_while_another_refreshes_the_old_token_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(wechat([]), monkeypatch)
    world.store_token("T1", age=7000)
    assert world.store.acquire_lock(POLICY.name, 30) is not None  # another process
    assert world.run(access_token_flow(POLICY)) == "T1"
    assert world.sent == []


def test_without_a_usable_token_it_waits_for_the_refresher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(wechat([]), monkeypatch)
    world.store_token("T1", age=7150)  # 50 s left: too close to its expiry to use
    assert world.store.acquire_lock(POLICY.name, 30) is not None
    waits: List[int] = []

    def refresher_finishes_after_three_waits() -> None:
        waits.append(1)
        if len(waits) == 3:
            world.store_token("T2")

    world.on_wait = refresher_finishes_after_three_waits
    assert world.run(access_token_flow(POLICY)) == "T2"
    assert world.sent == [] and len(waits) == 3


def test_a_refresher_that_failed_lets_the_next_one_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(wechat(["T2"]), monkeypatch)
    owner = world.store.acquire_lock(POLICY.name, 30)
    assert owner is not None
    world.on_wait = lambda: world.store.release_lock(POLICY.name, owner)  # it gave up
    assert world.run(access_token_flow(POLICY)) == "T2"
    assert world.sent == [(STABLE_TOKEN_PATH, None)]


def test_waiting_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(wechat([]), monkeypatch)
    # A lock that outlives the wait (only a broken store would hold one this long).
    assert world.store.acquire_lock(POLICY.name, 3600) is not None
    with pytest.raises(UpstreamTimeout):
        world.run(access_token_flow(POLICY))
    assert POLICY.lock_ttl < world.kinds().count("Sleep") * 0.05 < POLICY.lock_ttl + 2


def test_a_failed_fetch_releases_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: ApiRequest, access_token: Optional[str]) -> Tuple[int, bytes]:
        return reply(errcode=40125, errmsg="invalid appsecret")

    world = World(refuse, monkeypatch)
    with pytest.raises(UpstreamError) as info:
        world.run(access_token_flow(POLICY))
    assert info.value.errcode == 40125
    assert world.kinds()[-1] == "release_lock"
    assert world.store.acquire_lock(POLICY.name, 1) is not None


def test_a_busy_token_endpoint_is_retried_once(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(
        [reply(errcode=-1, errmsg="system error"), reply(access_token="T1", expires_in=7200)]
    )
    world = World(lambda request, token: next(answers), monkeypatch)
    assert world.run(access_token_flow(POLICY)) == "T1"
    assert world.kinds().count("HttpCall") == 2 and "Sleep" in world.kinds()


def test_a_rejected_token_is_never_handed_out_again(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(wechat(["T2"]), monkeypatch)
    world.store_token("T1")
    assert world.run(access_token_flow(POLICY, rejected="T1")) == "T2"


def test_stable_token_that_keeps_a_rejected_token_is_forced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bodies: List[Any] = []

    def stable(request: ApiRequest, access_token: Optional[str]) -> Tuple[int, bytes]:
        bodies.append(request.body)
        forced = request.body is not None and request.body["force_refresh"]
        return reply(access_token="T2" if forced else "T1", expires_in=7200)

    world = World(stable, monkeypatch)
    assert world.run(access_token_flow(POLICY, rejected="T1")) == "T2"
    assert [body["force_refresh"] for body in bodies] == [False, True]


def test_invalidate_keeps_a_newer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(wechat([]), monkeypatch)
    world.store_token("T2")
    world.run(invalidate_flow(POLICY, "T1"))
    assert world.store.get_value(POLICY.name) is not None
    world.run(invalidate_flow(POLICY, "T2"))
    assert world.store.get_value(POLICY.name) is None


def test_call_with_a_refused_token_retries_once_with_a_fresh_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def api(token: Optional[str]) -> Tuple[int, bytes]:
        return reply(errcode=0) if token == "T2" else reply(errcode=42001, errmsg="expired")

    world = World(wechat(["T2"], api), monkeypatch)
    world.store_token("T1")
    request = check_session_request(SESSION)
    assert world.run(api_call_flow(POLICY, request, parse_check_session)) is True
    assert world.sent == [
        (CHECK_SESSION_PATH, "T1"),
        (STABLE_TOKEN_PATH, None),
        (CHECK_SESSION_PATH, "T2"),
    ]


def test_call_refused_twice_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(wechat(["T1", "T2"], lambda token: reply(errcode=40001)), monkeypatch)
    request = check_session_request(SESSION)
    with pytest.raises(AccessTokenRejected) as info:
        world.run(api_call_flow(POLICY, request, parse_check_session))
    assert info.value.status == 502
    assert [path for path, _ in world.sent].count(CHECK_SESSION_PATH) == 2


def test_call_retries_a_connection_that_never_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: List[Optional[str]] = []

    def api(token: Optional[str]) -> Tuple[int, bytes]:
        attempts.append(token)
        if len(attempts) == 1:
            raise UpstreamUnreachable(detail="ConnectError")
        return reply(errcode=0)

    world = World(wechat(["T1"], api), monkeypatch)
    request = check_session_request(SESSION)
    assert world.run(api_call_flow(POLICY, request, parse_check_session)) is True
    assert attempts == ["T1", "T1"]


def test_a_used_phone_code_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(wechat(["T1"], lambda token: reply(errcode=40029)), monkeypatch)
    request = phone_number_request("used")
    with pytest.raises(InvalidCode):
        world.run(api_call_flow(POLICY, request, parse_phone_number))
    assert [path for path, _ in world.sent].count(PHONE_NUMBER_PATH) == 1


def test_plain_token_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(wechat(["T1"]), monkeypatch)
    assert world.run(access_token_flow(TokenPolicy(CONFIG, stable=False))) == "T1"
    assert world.sent == [(TOKEN_PATH, None)]
