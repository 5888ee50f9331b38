"""The decision core, branch by branch, without any I/O."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

import pytest

from wxmiddleware import core
from wxmiddleware._perform import AsyncPerformer, SyncPerformer
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
from wxmiddleware.session import (
    CLAIM_OWNER,
    CLAIM_PENDING,
    CodeClaim,
    WxSession,
    claim_used,
    code_key,
    seal_token,
)


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
            ("/wx/login/", RequestKind.NEAR_LOGIN),
            ("/wx/logout/", RequestKind.NEAR_LOGOUT),
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
            ("application/json", b'{"code": "abc", "code": "abc"}', "abc"),
            ("application/json", b'{"code": "a+b/c=="}', "a+b/c=="),
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
            ("application/json", b'{"code": "a", "code": "b"}'),
            # Every platform's codes are printable ASCII.
            ("application/json", '{"code": "码"}'.encode()),
            ("application/json", b'{"code": "a b\u00a0"}'),
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


class Recorder:
    """The store and the WeChat transport of a login flow, recording each effect.

    The package's own :class:`SyncPerformer` drives the flow against it.
    """

    def __init__(self, claims: Optional[List[CodeClaim]] = None) -> None:
        self.effects: List[str] = []
        self.claims = claims or [CLAIM_OWNER]
        self.sessions: Dict[str, WxSession] = {}
        self.saved: List[Tuple[Any, ...]] = []
        self.reply: Any = (200, json.dumps({"openid": "openid-1", "session_key": SESSION_KEY}))
        self.calls: List[core.HttpCall] = []

    def claim_code(self, key: str, ttl: int) -> CodeClaim:
        self.effects.append("claim_code")
        return self.claims.pop(0) if len(self.claims) > 1 else self.claims[0]

    def get(self, token: str, idle_ttl: int, scope: Any) -> Optional[WxSession]:
        self.effects.append("get")
        return self.sessions.get(token)

    def save(self, token: str, session: WxSession, *rest: Any) -> None:
        self.effects.append("save")
        self.sessions[token] = session
        self.saved.append((token, session, *rest))

    def release_code(self, key: str) -> None:
        self.effects.append("release_code")

    def request(self, call: core.HttpCall) -> Tuple[int, bytes]:
        self.effects.append("jscode2session")
        self.calls.append(call)
        if isinstance(self.reply, BaseException):
            raise self.reply
        status, text = self.reply
        return status, text.encode()

    def run(self, flow: core.Flow[Any]) -> Any:
        return SyncPerformer(self, self).run(flow)


SESSION_KEY = "c2Vzc2lvbmtleQ=="


def noted(flow: core.Flow[Any], kinds: List[str]) -> core.Flow[Any]:
    """``flow`` unchanged, noting each effect's kind (a store call by its operation)."""
    try:
        effect = next(flow)
        while True:
            kinds.append(effect.op if isinstance(effect, core.StoreCall) else type(effect).__name__)
            effect = flow.send((yield effect))
    except StopIteration as stop:
        return stop.value


class TestLoginFlow:
    config = make_config(connect_timeout=0.01, read_timeout=0.01)

    def test_fresh_code(self) -> None:
        io = Recorder()
        token, session, fresh = io.run(core.login_flow("code-1", self.config))
        assert fresh
        assert io.effects == ["claim_code", "jscode2session", "save"]
        assert len(token) >= 43 and session.openid == "openid-1"
        _, _, _, _, key, sealed = io.saved[-1]
        assert key == code_key("code-1") and token not in sealed
        call = io.calls[0]
        assert call.params["js_code"] == "code-1" and call.url.endswith("/sns/jscode2session")
        assert "code-1" not in repr(call) and "s3cret-value" not in repr(call)

    def test_retried_code_returns_the_same_session(self) -> None:
        io = Recorder()
        token, session, _ = io.run(core.login_flow("code-1", self.config))
        sealed = io.saved[-1][-1]
        io.effects.clear()
        io.claims = [claim_used(sealed)]
        again = io.run(core.login_flow("code-1", self.config))
        assert again == (token, session, False)
        assert io.effects == ["claim_code", "get"]

    def test_retried_code_after_logout_is_invalid(self) -> None:
        io = Recorder(claims=[claim_used(seal_token("code-1", "T" * 43))])
        with pytest.raises(InvalidCode):
            io.run(core.login_flow("code-1", self.config))

    def test_sealed_record_of_another_code_is_invalid(self) -> None:
        io = Recorder(claims=[claim_used(seal_token("other-code", "T" * 43))])
        with pytest.raises(InvalidCode):
            io.run(core.login_flow("code-1", self.config))
        assert io.effects == ["claim_code"]

    def test_pending_then_done(self) -> None:
        io = Recorder()
        token, _, _ = io.run(core.login_flow("code-1", self.config))
        sealed = io.saved[-1][-1]
        io.effects.clear()
        io.claims = [CLAIM_PENDING, CLAIM_PENDING, claim_used(sealed)]
        kinds: List[str] = []
        assert io.run(noted(core.login_flow("code-1", self.config), kinds))[0] == token
        assert kinds == ["claim_code", "Sleep", "claim_code", "Sleep", "claim_code", "get"]

    def test_pending_forever_times_out(self) -> None:
        io = Recorder(claims=[CLAIM_PENDING])
        with pytest.raises(UpstreamTimeout):
            io.run(core.login_flow("code-1", self.config))

    @pytest.mark.parametrize("error", [InvalidCode(), RuntimeError("bug")])
    def test_failure_releases_the_claim(self, error: Exception) -> None:
        io = Recorder()
        io.reply = error
        with pytest.raises(type(error)):
            io.run(core.login_flow("code-1", self.config))
        assert io.effects == ["claim_code", "jscode2session", "release_code"]

    def test_busy_is_retried_once_then_releases_the_claim(self) -> None:
        io = Recorder()
        io.reply = UpstreamBusy()
        with pytest.raises(UpstreamBusy):
            io.run(core.login_flow("code-1", self.config))
        assert io.effects == ["claim_code", "jscode2session", "jscode2session", "release_code"]

    def test_store_failure_propagates(self) -> None:
        class DownStore:
            def claim_code(self, *args: Any) -> CodeClaim:
                raise WxError("store down")

        with pytest.raises(WxError):
            SyncPerformer(DownStore(), None).run(core.login_flow("code-1", self.config))


def test_cancelled_async_login_releases_its_claim() -> None:
    import asyncio

    io = Recorder()

    class AsyncRecorder:
        async def claim_code(self, *args: Any) -> CodeClaim:
            return io.claim_code(*args)

        async def release_code(self, *args: Any) -> None:
            io.release_code(*args)

        async def request(self, *args: Any) -> Tuple[int, bytes]:
            io.effects.append("jscode2session")
            raise asyncio.CancelledError

    async def run() -> None:
        recorder = AsyncRecorder()
        flow = core.login_flow("code-1", TestLoginFlow.config)
        with pytest.raises(asyncio.CancelledError):
            await AsyncPerformer(recorder, recorder).run(flow)

    asyncio.run(run())
    assert io.effects == ["claim_code", "jscode2session", "release_code"]


def test_closed_flow_does_not_yield_again() -> None:
    flow = core.login_flow("code-1", TestLoginFlow.config)
    first = next(flow)
    assert isinstance(first, core.StoreCall) and first.op == "claim_code"
    assert isinstance(flow.send(CLAIM_OWNER), core.HttpCall)
    flow.close()
