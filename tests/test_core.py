"""The decision core, branch by branch, without any I/O."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import pytest

from wxmiddleware import core
from wxmiddleware.config import WxConfig
from wxmiddleware.core import RequestKind, Router
from wxmiddleware.errors import (
    BadRequest,
    InvalidCode,
    InvalidSession,
    MethodNotAllowed,
    RateLimited,
    UnsupportedMediaType,
    UpstreamBusy,
    UpstreamTimeout,
    WxError,
)
from wxmiddleware.session import WxSession, code_key, seal_token
from wxmiddleware.stores.base import PENDING
from wxmiddleware.wechat._protocol import CodeSession


def make_config(**options: Any) -> WxConfig:
    return WxConfig(appid="wxappid", secret="s3cret-value", **options)


class TestRouter:
    router = Router(
        make_config(
            public_paths=("/health", "/static/*"),
            optional_paths=("/feed", "/static/private/*"),
        )
    )

    @pytest.mark.parametrize(
        ("path", "kind"),
        [
            ("/wx/login", RequestKind.LOGIN),
            ("/wx/logout", RequestKind.LOGOUT),
            ("/health", RequestKind.PUBLIC),
            ("/feed", RequestKind.OPTIONAL),
            ("/static", RequestKind.PUBLIC),
            ("/static/app.js", RequestKind.PUBLIC),
            ("/static/deep/er/file.css", RequestKind.PUBLIC),
            ("/static/private/x", RequestKind.OPTIONAL),
            ("/api/me", RequestKind.PROTECTED),
            ("/", RequestKind.PROTECTED),
            ("", RequestKind.PROTECTED),
            ("/health/", RequestKind.PROTECTED),
            ("/healthz", RequestKind.PROTECTED),
            ("/HEALTH", RequestKind.PROTECTED),
            ("/staticfile", RequestKind.PROTECTED),
            ("/wx/login/", RequestKind.PROTECTED),
            ("/static/../api/me", RequestKind.PROTECTED),
            ("/static/./app.js", RequestKind.PROTECTED),
            ("/static/..", RequestKind.PROTECTED),
            ("/static/a\\..\\api", RequestKind.PROTECTED),
        ],
    )
    def test_classify(self, path: str, kind: RequestKind) -> None:
        assert self.router.classify(path) is kind

    @pytest.mark.parametrize(
        "raw", ["/static%2F..%2Fapi/me", "/static/a%2fb", "/health%5C", "/static/%00"]
    )
    def test_encoded_separator_is_never_public(self, raw: str) -> None:
        assert self.router.classify("/static/x", raw) is RequestKind.PROTECTED
        assert self.router.classify("/health", raw) is RequestKind.PROTECTED

    def test_harmless_escape_keeps_public(self) -> None:
        assert self.router.classify("/health", "/he%61lth") is RequestKind.PUBLIC

    def test_login_wins_over_public(self) -> None:
        router = Router(make_config(public_paths=("/wx/*",)))
        assert router.classify("/wx/login") is RequestKind.LOGIN
        assert router.classify("/wx/other") is RequestKind.PUBLIC

    def test_narrower_prefix_wins(self) -> None:
        assert self.router.classify("/static/private/a/b") is RequestKind.OPTIONAL

    def test_root_wildcard(self) -> None:
        router = Router(make_config(public_paths=("/*",)))
        assert router.classify("/anything") is RequestKind.PUBLIC
        assert router.classify("/a/../b") is RequestKind.PROTECTED


class TestPickToken:
    token = "A" * 43

    def test_none(self) -> None:
        assert core.pick_token([]) is None
        assert core.pick_token([""]) is None
        assert core.pick_token([" , "]) is None

    def test_single(self) -> None:
        assert core.pick_token([self.token]) == self.token

    def test_duplicates_that_agree(self) -> None:
        assert core.pick_token([self.token, self.token]) == self.token
        assert core.pick_token([f"{self.token}, {self.token}"]) == self.token
        assert core.pick_token(["", self.token]) == self.token

    def test_conflict_is_400(self) -> None:
        with pytest.raises(BadRequest):
            core.pick_token([self.token, "B" * 43])
        with pytest.raises(BadRequest):
            core.pick_token([f"{self.token},{'B' * 43}"])

    @pytest.mark.parametrize(
        "value", ["a b", "tok\x00en", "日本語", "x" * 129, "a;b", "a/b", "tok\ten"]
    )
    def test_malformed_is_401(self, value: str) -> None:
        with pytest.raises(InvalidSession):
            core.pick_token([value])

    def test_missing_token_names_the_hyphen_header(self) -> None:
        error = core.missing_token_error(make_config())
        assert error.status == 401
        assert "'3rd-session'" in error.message and "3rd_session" in error.message

    def test_missing_token_with_custom_header(self) -> None:
        config = make_config(token_headers=("Authorization",), wafer_compat=False)
        error = core.missing_token_error(config)
        assert "'Authorization'" in error.message and "underscore" not in error.message


class TestLoginBody:
    @pytest.mark.parametrize(
        ("content_type", "body", "code"),
        [
            ("application/json", b'{"code": "abc"}', "abc"),
            ("application/json; charset=utf-8", b'{"wxCode": "abc"}', "abc"),
            ("application/vnd.api+json", b'{"code": "abc"}', "abc"),
            (None, b'{"code": "abc"}', "abc"),
            ("application/x-www-form-urlencoded", b"code=a%26b%3Dc", "a&b=c"),
            ("application/x-www-form-urlencoded", b"wxCode=xyz&other=1", "xyz"),
            ("application/json", b'{"code": "abc", "wxCode": "abc"}', "abc"),
            ("application/json", '{"code": "码"}'.encode(), "码"),
        ],
    )
    def test_accepted(self, content_type: Optional[str], body: bytes, code: str) -> None:
        assert core.login_code_from_body(content_type, body) == code

    @pytest.mark.parametrize(
        ("content_type", "body"),
        [
            ("application/json", b""),
            ("application/json", b"   "),
            ("application/json", b'{"code": '),
            ("application/json", b"[1, 2]"),
            ("application/json", b'"code"'),
            ("application/json", b"\xff\xfe{}"),
            ("application/json", b"{}"),
            ("application/json", b'{"code": null}'),
            ("application/json", b'{"code": ""}'),
            ("application/json", b'{"code": 123}'),
            ("application/json", b'{"code": {"a": 1}}'),
            ("application/json", b'{"code": ["a"]}'),
            ("application/json", b'{"code": "a\\u0000b"}'),
            ("application/json", json.dumps({"code": "x" * 300}).encode()),
            ("application/json", b'{"code": "a", "wxCode": "b"}'),
            ("application/x-www-form-urlencoded", b"code=a&code=b"),
            ("application/x-www-form-urlencoded", b"code=%ff"),
            ("application/x-www-form-urlencoded", b"other=1"),
        ],
    )
    def test_rejected_with_400(self, content_type: str, body: bytes) -> None:
        with pytest.raises(BadRequest):
            core.login_code_from_body(content_type, body)

    @pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data; boundary=x"])
    def test_wrong_media_type_is_415(self, content_type: str) -> None:
        with pytest.raises(UnsupportedMediaType):
            core.login_code_from_body(content_type, b"code=abc")

    def test_query(self) -> None:
        assert core.login_code_from_query("code=abc") == "abc"
        assert core.login_code_from_query("wxCode=abc&x=1") == "abc"
        with pytest.raises(BadRequest):
            core.login_code_from_query("")
        with pytest.raises(BadRequest):
            core.login_code_from_query("code=a&code=b")


class TestMethodsAndLength:
    def test_login_methods(self) -> None:
        core.check_login_method("POST", make_config())
        with pytest.raises(MethodNotAllowed) as info:
            core.check_login_method("GET", make_config())
        assert ("Allow", "POST") in info.value.headers
        core.check_login_method("GET", make_config(allow_get_login=True))
        with pytest.raises(MethodNotAllowed) as info:
            core.check_login_method("PUT", make_config(allow_get_login=True))
        assert ("Allow", "POST, GET") in info.value.headers

    def test_logout_method(self) -> None:
        core.check_logout_method("POST")
        for method in ("GET", "HEAD", "OPTIONS", "DELETE"):
            with pytest.raises(MethodNotAllowed):
                core.check_logout_method(method)

    def test_body_length(self) -> None:
        config = make_config(max_body_bytes=100)
        assert core.body_length(None, config) is None
        assert core.body_length("", config) is None
        assert core.body_length("100", config) == 100
        for bad in ("101", "-1", "1e3", "abc", " 5"):
            with pytest.raises(BadRequest):
                core.body_length(bad, config)


def decode(response: core.Response) -> Dict[str, Any]:
    result: Dict[str, Any] = json.loads(response.body)
    return result


class TestResponses:
    session = WxSession("openid-1", "sk==", "union-1", 1000.0, 1000.0 + 86400)

    def test_error_response(self) -> None:
        response = core.error_response(RateLimited(errcode=45011, headers=[("Retry-After", "60")]))
        assert response.status == 429
        assert response.status_line == "429 Too Many Requests"
        assert decode(response) == {
            "error": "rate_limited",
            "message": RateLimited.default_message,
            "errcode": 45011,
        }
        headers = dict(response.headers)
        assert headers["Retry-After"] == "60"
        assert headers["Content-Type"] == "application/json"
        assert headers["Content-Length"] == str(len(response.body))
        assert headers["Cache-Control"] == "no-store"

    def test_401_has_www_authenticate(self) -> None:
        headers = dict(core.error_response(InvalidSession()).headers)
        assert headers["WWW-Authenticate"].startswith("WxSession")

    def test_login_response(self) -> None:
        config = make_config(session_ttl=600)
        response = core.login_response("tok", self.session, config, now=1000.0)
        assert response.status == 200
        assert decode(response) == {"3rd_session": "tok", "expires_in": 600}

    def test_expires_in_is_capped_by_absolute_expiry(self) -> None:
        response = core.login_response("tok", self.session, make_config(), now=1000.0 + 86000)
        assert decode(response)["expires_in"] == 400

    def test_expose_openid_and_extra(self) -> None:
        config = make_config(expose_openid=True)
        response = core.login_response(
            "tok", self.session, config, {"nickname": "n", "3rd_session": "no"}, now=1000.0
        )
        body = decode(response)
        assert body["openid"] == "openid-1" and body["unionid"] == "union-1"
        assert body["nickname"] == "n" and body["3rd_session"] == "tok"
        assert "session_key" not in body

    def test_logout_response(self) -> None:
        assert core.logout_response().status == 204
        assert core.logout_response().body == b""

    def test_resolve_config(self) -> None:
        config = make_config()
        assert core.resolve_config(config, {}) is config
        assert core.resolve_config(config, {"session_ttl": 60}).session_ttl == 60
        assert core.resolve_config(None, {"appid": "a", "secret": "b"}).appid == "a"


class FakeIO:
    """Performs login effects against dictionaries, recording each one."""

    def __init__(self, claims: Optional[List[Optional[str]]] = None) -> None:
        self.effects: List[Any] = []
        self.claims = claims or [None]
        self.sessions: Dict[str, WxSession] = {}
        self.reply: Any = CodeSession("openid-1", "c2Vzc2lvbmtleQ==", None)

    def perform(self, effect: core.Effect) -> Any:
        self.effects.append(effect)
        if isinstance(effect, core.ClaimCode):
            return self.claims.pop(0) if len(self.claims) > 1 else self.claims[0]
        if isinstance(effect, core.ExchangeCode):
            if isinstance(self.reply, Exception):
                raise self.reply
            return self.reply
        if isinstance(effect, core.SaveSession):
            self.sessions[effect.token] = effect.session
        if isinstance(effect, core.LoadSession):
            return self.sessions.get(effect.token)
        return None

    def kinds(self) -> List[str]:
        return [type(effect).__name__ for effect in self.effects]


class TestLoginFlow:
    config = make_config(connect_timeout=0.01, read_timeout=0.01)

    def test_fresh_code(self) -> None:
        io = FakeIO()
        token, session = core.run_login(core.login_flow("code-1", self.config), io.perform)
        assert io.kinds() == ["ClaimCode", "ExchangeCode", "SaveSession"]
        assert len(token) >= 43 and session.openid == "openid-1"
        save = io.effects[-1]
        assert save.code_key == code_key("code-1") and token not in save.sealed_token
        assert "code-1" not in repr(io.effects) and "c2Vzc2lvbmtleQ" not in repr(io.effects)

    def test_retried_code_returns_the_same_session(self) -> None:
        io = FakeIO()
        token, session = core.run_login(core.login_flow("code-1", self.config), io.perform)
        sealed = io.effects[-1].sealed_token
        io.effects.clear()
        io.claims = [sealed]
        again = core.run_login(core.login_flow("code-1", self.config), io.perform)
        assert again == (token, session)
        assert io.kinds() == ["ClaimCode", "LoadSession"]

    def test_retried_code_after_logout_is_invalid(self) -> None:
        io = FakeIO(claims=[seal_token("code-1", "T" * 43)])
        with pytest.raises(InvalidCode):
            core.run_login(core.login_flow("code-1", self.config), io.perform)

    def test_sealed_record_of_another_code_is_invalid(self) -> None:
        io = FakeIO(claims=[seal_token("other-code", "T" * 43)])
        with pytest.raises(InvalidCode):
            core.run_login(core.login_flow("code-1", self.config), io.perform)
        assert io.kinds() == ["ClaimCode"]

    def test_pending_then_done(self) -> None:
        io = FakeIO()
        token, _ = core.run_login(core.login_flow("code-1", self.config), io.perform)
        sealed = io.effects[-1].sealed_token
        io.effects.clear()
        io.claims = [PENDING, PENDING, sealed]
        assert core.run_login(core.login_flow("code-1", self.config), io.perform)[0] == token
        assert io.kinds() == ["ClaimCode", "Wait", "ClaimCode", "Wait", "ClaimCode", "LoadSession"]

    def test_pending_forever_times_out(self) -> None:
        io = FakeIO(claims=[PENDING])
        with pytest.raises(UpstreamTimeout):
            core.run_login(core.login_flow("code-1", self.config), io.perform)

    @pytest.mark.parametrize("error", [UpstreamBusy(), InvalidCode(), RuntimeError("bug")])
    def test_failure_releases_the_claim(self, error: Exception) -> None:
        io = FakeIO()
        io.reply = error
        with pytest.raises(type(error)):
            core.run_login(core.login_flow("code-1", self.config), io.perform)
        assert io.kinds() == ["ClaimCode", "ExchangeCode", "ReleaseCode"]

    def test_store_failure_propagates(self) -> None:
        def perform(effect: core.Effect) -> Any:
            raise WxError("store down")

        with pytest.raises(WxError):
            core.run_login(core.login_flow("code-1", self.config), perform)


def test_cancelled_async_login_releases_its_claim() -> None:
    import asyncio

    io = FakeIO()

    async def perform(effect: core.Effect) -> Any:
        if isinstance(effect, core.ExchangeCode):
            raise asyncio.CancelledError
        return io.perform(effect)

    async def run() -> None:
        flow = core.login_flow("code-1", TestLoginFlow.config)
        with pytest.raises(asyncio.CancelledError):
            await core.run_login_async(flow, perform)

    asyncio.run(run())
    assert io.kinds() == ["ClaimCode", "ReleaseCode"]


def test_closed_flow_does_not_yield_again() -> None:
    flow = core.login_flow("code-1", TestLoginFlow.config)
    assert isinstance(next(flow), core.ClaimCode)
    assert isinstance(flow.send(None), core.ExchangeCode)
    flow.close()
