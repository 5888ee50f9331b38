"""Every mini-program platform's code exchange behind one interface: the providers.

A login is the same on every platform: the mini-program gets a one-time code
(``wx.login``, ``qq.login``, ``tt.login``, ``swan.login``, ``ks.login``,
``my.getAuthCode``), the server exchanges it for the user's id in the app and, on most
platforms, a session key. A :class:`Provider` knows one platform's side of that: the request
(:meth:`Provider.request`), how its answer reads (:meth:`Provider.parse`, into one
:class:`~wxmiddleware.wechat._protocol.CodeSession`) and which of its error codes mean
what (:attr:`Provider.errors`, mapped once, here, by :func:`refusal` onto the package's
error family). The login flow (:mod:`._login`) asks :func:`exchange_code`, which picks the
app's provider; everything after the exchange (the session, the stores, the token, the
errors' JSON) is the same for every platform.

The one retry rule holds for every platform (:func:`._upstream.send`): a platform's "busy"
answer (one that says it did nothing) and a connection that never opened are retried once;
nothing else is, so a code is never spent twice.

Every answer that is not the documented shape (another status, not JSON, an HTML error
page, a missing user id, an unknown error code) is a ``502`` and nothing is stored; error
details name a platform's code and message, never the secret, a key, the code or a session
key. Sources are cited on each provider; docs/platforms.md has the table.
"""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar, Dict, Mapping, NamedTuple, Optional, Tuple, Union

from .. import _json as bounded_json
from .._apps import PLATFORM_INFO
from ..config import WxConfig
from ..errors import (
    InvalidCode,
    RateLimited,
    UpstreamBusy,
    UpstreamError,
    UserBlocked,
    WxError,
)
from ..wechat._protocol import CodeSession
from ._effects import Flow, HttpCall
from ._upstream import jscode2session, send

#: What a platform's error code means; :func:`refusal` turns each into its error.
INVALID_CODE = "invalid_code"  # 401: the code is unknown, expired, used, or another app's
RATE_LIMITED = "rate_limited"  # 429 with Retry-After
BUSY = "busy"  # 503 after the one retry: the platform says it did nothing
MISCONFIGURED = "misconfigured"  # 502: the app's id, secret or keys are wrong
BLOCKED = "blocked"  # 403: the platform refuses this user

ErrorCode = Union[int, str]


class LoginCode(NamedTuple):
    """What the mini-program sent to log in: its ``code`` and, from Douyin's ``tt.login``,
    the ``anonymous_code`` beside it (``None`` when absent; other platforms ignore it)."""

    code: str
    anonymous_code: Optional[str] = None


def refusal(platform: str, kind: Optional[str], code: ErrorCode, message: str = "") -> WxError:
    """The error a refusal by ``platform`` with error ``code`` (and its ``message``, for
    the log only, cut to 100 characters) maps to: ``kind`` is one of :data:`INVALID_CODE`
    (401), :data:`RATE_LIMITED` (429, ``Retry-After: 60``), :data:`BUSY` (503, retried once
    first), :data:`MISCONFIGURED` (502), :data:`BLOCKED` (403), or ``None`` for a code the
    platform does not document (502). A numeric ``code`` is the answer's ``errcode``."""
    info = PLATFORM_INFO[platform]
    errcode = code if isinstance(code, int) and not isinstance(code, bool) else None
    detail = f"{info.title} error {code}: {message[:100]!r}"
    if kind == INVALID_CODE:
        return InvalidCode(
            f"The login code is invalid or was already used; call {info.login} again.",
            errcode=errcode,
            detail=detail,
        )
    if kind == RATE_LIMITED:
        return RateLimited(errcode=errcode, headers=[("Retry-After", "60")], detail=detail)
    if kind == BUSY:
        return UpstreamBusy(
            f"The {info.title} login service is busy; try again shortly.",
            errcode=errcode,
            detail=detail,
        )
    if kind == MISCONFIGURED:
        return UpstreamError(
            "The login service is misconfigured.",
            errcode=errcode,
            detail=f"{info.title} rejected the app's credentials ({detail}): check its appid"
            " and secret (Alipay: its keys)",
        )
    if kind == BLOCKED:
        return UserBlocked(f"{info.title} refused this user.", errcode=errcode, detail=detail)
    return UpstreamError(
        f"{info.title} refused the login (error {code}).", errcode=errcode, detail=detail
    )


def _text(value: Any) -> Optional[str]:
    """``value`` when it is a non-empty string, else ``None``."""
    return value if isinstance(value, str) and value else None


class Provider:
    """One platform's code exchange: :meth:`request` builds the call, :meth:`parse` reads
    the answer into a :class:`CodeSession` or raises the error :attr:`errors` maps its code
    to (:func:`refusal`), and :meth:`exchange` sends it with the one retry rule.

    A provider holds no state; :data:`PROVIDERS` has one of each.
    """

    #: The platform's name (:data:`wxmiddleware._apps.PLATFORMS`).
    platform: ClassVar[str]
    #: The platform's documented error codes and what each means.
    errors: ClassVar[Mapping[ErrorCode, str]] = {}

    def exchange(self, config: WxConfig, login: LoginCode) -> Flow[CodeSession]:
        """Exchange ``login`` for the user of the app ``config`` describes (one app's
        configuration, :meth:`WxConfig.for_app`), with the one retry rule."""
        call = self.request(config, login, time.time())
        return (yield from send(call, lambda status, body: self.parse(config, status, body)))

    def request(self, config: WxConfig, login: LoginCode, now: float) -> HttpCall:
        """The exchange's HTTP call (``now``: epoch seconds, for a signed timestamp)."""
        raise NotImplementedError

    def parse(self, config: WxConfig, status: int, body: bytes) -> CodeSession:
        """The user an answer names, or the :class:`WxError` it maps to."""
        raise NotImplementedError

    def refused(self, code: ErrorCode, message: Any) -> WxError:
        """The error for this platform's error ``code`` (:func:`refusal`)."""
        return refusal(self.platform, self.errors.get(code), code, str(message or ""))

    def answer(self, status: int, body: bytes, also: Tuple[int, ...] = ()) -> Dict[str, Any]:
        """The JSON object of an answer with HTTP 200 (or a status in ``also``); ``502``
        for another status, a body that is not JSON (an HTML error page) or JSON that is
        not an object."""
        title = PLATFORM_INFO[self.platform].title
        if status != 200 and status not in also:
            raise UpstreamError(f"{title} answered HTTP {status}.")
        try:
            data: Any = bounded_json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise UpstreamError(f"{title} answered something that is not JSON.") from None
        if not isinstance(data, dict):
            raise UpstreamError(f"{title} answered JSON that is not an object.")
        return data

    def number(self, data: Mapping[str, Any], name: str) -> int:
        """The integer member ``name`` of an answer (``0`` when absent); ``502`` for
        another type."""
        value = data.get(name, 0)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            title = PLATFORM_INFO[self.platform].title
            raise UpstreamError(f"{title} answered a malformed {name}.")
        return value

    def user(
        self,
        openid: Any,
        session_key: Any,
        unionid: Any = None,
        anonymous_id: Any = None,
        key_required: bool = True,
    ) -> CodeSession:
        """The result of a successful answer; ``502`` without a user id (or without a
        session key where the platform always gives one)."""
        user_id, key = _text(openid), _text(session_key)
        if user_id is None or (key_required and key is None):
            title = PLATFORM_INFO[self.platform].title
            raise UpstreamError(f"{title} answered without a user id or session key.")
        return CodeSession(user_id, key or "", _text(unionid), _text(anonymous_id))


class WeChatProvider(Provider):
    """WeChat: ``GET https://api.weixin.qq.com/sns/jscode2session`` (code2Session), or
    ``/sns/component/jscode2session`` for an app logged in through a third-party
    platform; the request, parser and errcode table are :mod:`wxmiddleware.wechat._protocol`'s
    (jscode2session as an ordinary API request). Source:
    developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/user-login/code2Session.html.
    """

    platform = "wechat"

    def exchange(self, config: WxConfig, login: LoginCode) -> Flow[CodeSession]:
        """WeChat's exchange, :func:`._upstream.jscode2session` (the anonymous code is not
        WeChat's)."""
        return jscode2session(config, login.code)


class QQProvider(Provider):
    """QQ: ``GET https://api.q.qq.com/sns/jscode2session?appid&secret&js_code&grant_type=
    authorization_code`` for a ``qq.login()`` code; the answer is WeChat's shape
    (``openid``, ``session_key``, ``unionid``; on failure ``errcode``, ``errmsg``).

    Documented errcodes: ``-1`` system busy (retried once), ``40029`` invalid code,
    ``45011`` rate limit (100 per user per minute). Source: QQ mini-program server API,
    q.qq.com/wiki/develop/miniprogram/server/open_port/port_login.html#code2session
    ("请求地址 GET https://api.q.qq.com/sns/jscode2session?appid=APPID&secret=SECRET&
    js_code=JSCODE&grant_type=authorization_code"; mirrored at
    w3cschool.cn/qqxiaochengxu/qqxiaochengxu-c5fl3875.html).
    """

    platform = "qq"
    errors: ClassVar[Mapping[ErrorCode, str]] = {-1: BUSY, 40029: INVALID_CODE, 45011: RATE_LIMITED}

    def request(self, config: WxConfig, login: LoginCode, now: float) -> HttpCall:
        """See :class:`QQProvider`: the query goes in ``params=`` (URL-encoded)."""
        params = {
            "appid": config.appid,
            "secret": config.secret,
            "js_code": login.code,
            "grant_type": "authorization_code",
        }
        return HttpCall("GET", config.api_base_of("qq") + "/sns/jscode2session", params)

    def parse(self, config: WxConfig, status: int, body: bytes) -> CodeSession:
        """See :class:`QQProvider`."""
        data = self.answer(status, body)
        errcode = self.number(data, "errcode")
        if errcode:
            raise self.refused(errcode, data.get("errmsg"))
        return self.user(data.get("openid"), data.get("session_key"), data.get("unionid"))


class DouyinProvider(Provider):
    """Douyin (Toutiao, ByteDance): ``POST https://developer.toutiao.com/api/apps/v2/
    jscode2session`` with the JSON body ``{"appid", "secret", "code", "anonymous_code"}``
    (``anonymous_code`` only when ``tt.login()`` gave one). The answer is
    ``{"err_no": 0, "err_tips": "success", "data": {"session_key", "openid",
    "anonymous_openid", "unionid"}}``; a failure has a non-zero ``err_no`` and its
    ``err_tips``.

    Error numbers: ``-1`` system error (retried once), ``40014`` a parameter missing,
    ``40015`` wrong appid, ``40017`` wrong secret (each a ``502``), ``40018`` invalid code,
    ``40019`` invalid anonymous_code (``401``). Sources: developer.open-douyin.com/docs/
    resource/zh-CN/mini-app/develop/server/basic-abilities/log-in/code-2-session ("POST",
    ``https://developer.toutiao.com/api/apps/v2/jscode2session``, body ``appid``,
    ``secret``, ``code``, ``anonymous_code``; answer ``err_no``, ``err_tips``, ``data``),
    and the error table of the same API's first version (w3cschool.cn/microgame/
    microgame-k97136rd.html: -1 系统错误, 40015 appid 错误, 40017 secret 错误, 40018 code 错误,
    40019 acode 错误, 其它 参数为空).
    """

    platform = "douyin"
    errors: ClassVar[Mapping[ErrorCode, str]] = {
        -1: BUSY,
        40014: MISCONFIGURED,
        40015: MISCONFIGURED,
        40017: MISCONFIGURED,
        40018: INVALID_CODE,
        40019: INVALID_CODE,
    }

    def request(self, config: WxConfig, login: LoginCode, now: float) -> HttpCall:
        """See :class:`DouyinProvider`: a JSON body, nothing in the URL."""
        body = {"appid": config.appid, "secret": config.secret, "code": login.code}
        if login.anonymous_code:
            body["anonymous_code"] = login.anonymous_code
        url = config.api_base_of("douyin") + "/api/apps/v2/jscode2session"
        return HttpCall("POST", url, {}, body)

    def parse(self, config: WxConfig, status: int, body: bytes) -> CodeSession:
        """See :class:`DouyinProvider`."""
        data = self.answer(status, body)
        err_no = self.number(data, "err_no")
        if err_no:
            raise self.refused(err_no, data.get("err_tips"))
        found = data.get("data")
        if not isinstance(found, dict):
            raise UpstreamError("Douyin answered without its data object.")
        return self.user(
            found.get("openid"),
            found.get("session_key"),
            found.get("unionid"),
            found.get("anonymous_openid"),
        )


class BaiduProvider(Provider):
    """Baidu smart mini-programs: ``POST https://spapi.baidu.com/oauth/jscode2sessionkey``
    with the form ``code`` (from ``swan.login()``), ``client_id`` (the App Key, configured
    as the appid) and ``sk`` (the App Secret). The answer is ``{"openid", "session_key"}``;
    a failure is ``{"error", "error_description"}`` (OAuth 2.0 error words).

    Errors: ``invalid_grant`` (the code is invalid, used or expired) and ``expired_token``
    are ``401``; ``invalid_client`` (unknown App Key, wrong secret), ``unauthorized_client``
    and ``invalid_request`` are ``502``. Sources: smartprogram.baidu.com/docs/develop/
    serverapi/getSessionKey ("获取 Session Key 的 URL 地址 https://spapi.baidu.com/oauth/
    jscode2sessionkey", parameters ``code``, ``client_id``, ``sk``; mirrored at
    w3cschool.cn/baiduapp/baiduapp-kioq39sq.html) and its OAuth error list
    (w3cschool.cn/baiduapp/baiduapp-9mqz2t64.html, "错误码列表").
    """

    platform = "baidu"
    errors: ClassVar[Mapping[ErrorCode, str]] = {
        "invalid_grant": INVALID_CODE,
        "expired_token": INVALID_CODE,
        "invalid_client": MISCONFIGURED,
        "unauthorized_client": MISCONFIGURED,
        "invalid_request": MISCONFIGURED,
    }

    def request(self, config: WxConfig, login: LoginCode, now: float) -> HttpCall:
        """See :class:`BaiduProvider`: the secret travels in the form body, not the URL."""
        form = {"code": login.code, "client_id": config.appid, "sk": config.secret}
        url = config.api_base_of("baidu") + "/oauth/jscode2sessionkey"
        return HttpCall("POST", url, {}, None, form)

    def parse(self, config: WxConfig, status: int, body: bytes) -> CodeSession:
        """See :class:`BaiduProvider`; an ``errno`` other than 0 is an undocumented
        refusal (``502``). OAuth 2.0 (RFC 6749, 5.2) answers its errors with HTTP 400 or
        401, so those are read for an ``error`` too; without one they are a ``502``."""
        data = self.answer(status, body, also=(400, 401))
        error = data.get("error")
        if error is not None:
            raise self.refused(str(error)[:64], data.get("error_description"))
        if status != 200:
            raise UpstreamError(f"Baidu answered HTTP {status}.")
        errno = self.number(data, "errno")
        if errno:
            raise self.refused(errno, data.get("errmsg") or data.get("error_msg"))
        return self.user(data.get("openid"), data.get("session_key"))


class KuaishouProvider(Provider):
    """Kuaishou: ``POST https://open.kuaishou.com/oauth2/mp/code2session`` with the form
    ``app_id``, ``app_secret`` and ``js_code`` (from ``ks.login()``). The answer is
    ``{"result": 1, "session_key", "open_id"}`` (``union_id`` when the app has one); any
    other ``result`` is a failure, explained by ``error_msg``.

    Result codes: ``100`` incomplete parameters and ``240002`` an invalid app_secret
    (``502``), ``240001`` an invalid code (``401``); other results are ``502``. Sources:
    mp.kuaishou.com/docs/develop/server/code2Session.html (the URL and ``result``,
    ``session_key``, ``open_id``, as used in the answer of Kuaishou's SDKs, e.g.
    packagist.org/packages/fengz/kuaishou-miniapp-sdk) and Kuaishou's game code2session
    (game-docs.kwai.com/minigame/guide/open-function/code2session.html: "result int 1:成功,
    100:参数不完整, 240002:app_secret非法, 240001:code非法").
    """

    platform = "kuaishou"
    errors: ClassVar[Mapping[ErrorCode, str]] = {
        100: MISCONFIGURED,
        240001: INVALID_CODE,
        240002: MISCONFIGURED,
    }

    def request(self, config: WxConfig, login: LoginCode, now: float) -> HttpCall:
        """See :class:`KuaishouProvider`: the secret travels in the form body."""
        form = {"app_id": config.appid, "app_secret": config.secret, "js_code": login.code}
        url = config.api_base_of("kuaishou") + "/oauth2/mp/code2session"
        return HttpCall("POST", url, {}, None, form)

    def parse(self, config: WxConfig, status: int, body: bytes) -> CodeSession:
        """See :class:`KuaishouProvider`."""
        data = self.answer(status, body)
        result = self.number(data, "result")
        if result != 1:
            raise self.refused(result, data.get("error_msg"))
        return self.user(data.get("open_id"), data.get("session_key"), data.get("union_id"))


#: Alipay's method for a user's ids from an auth code, and the member of its answer.
ALIPAY_METHOD = "alipay.system.oauth.token"
ALIPAY_ANSWER = "alipay_system_oauth_token_response"
#: Alipay's gateway takes its timestamps in China Standard Time (UTC+8), in seconds.
ALIPAY_UTC_OFFSET = 8 * 3600


def alipay_signed_content(params: Mapping[str, str]) -> bytes:
    """What an Alipay request's ``sign`` signs: every parameter but ``sign`` with a value,
    sorted by name, as ``name=value`` joined by ``&`` (raw values, not URL-encoded),
    UTF-8."""
    pairs = sorted((name, value) for name, value in params.items() if name != "sign" and value)
    return "&".join(f"{name}={value}" for name, value in pairs).encode("utf-8")


def alipay_member(text: str, name: str) -> Optional[str]:
    """The raw JSON text of the top-level member ``name`` of the object ``text`` (what
    Alipay signs in an answer), or ``None`` when there is none."""
    decoder = json.JSONDecoder()
    index = text.find("{") + 1
    length = len(text)
    while index < length:
        while index < length and text[index] in " \t\r\n,":
            index += 1
        if index >= length or text[index] == "}":
            return None
        key, index = decoder.raw_decode(text, index)
        while index < length and text[index] in " \t\r\n:":
            index += 1
        start = index
        _, index = decoder.raw_decode(text, index)
        if key == name:
            return text[start:index]
    return None


class AlipayProvider(Provider):
    """Alipay: ``alipay.system.oauth.token`` through the gateway ``POST
    https://openapi.alipay.com/gateway.do``, for an auth code from ``my.getAuthCode()``.

    The common parameters (``app_id``, ``method``, ``format=JSON``, ``charset=utf-8``,
    ``sign_type=RSA2``, ``timestamp`` as ``yyyy-MM-dd HH:mm:ss`` in UTC+8, ``version=1.0``,
    ``sign``) go in the query string, ``grant_type=authorization_code`` and ``code`` in the
    form body; ``sign`` is the RSA2 (SHA256WithRSA) signature of all of them under the
    app's private key (:func:`alipay_signed_content`). The answer is
    ``{"alipay_system_oauth_token_response": {"user_id", "open_id", "access_token", …},
    "sign"}``, whose ``sign`` over the raw text of that member is checked with Alipay's
    public key (an answer whose signature fails is a ``502``); a failure is
    ``{"error_response": {"code", "msg", "sub_code", "sub_msg"}}``. The user id is
    ``open_id`` (``user_id`` for apps that still get only that); with both, ``user_id`` (the
    same user across apps) is the unionid. Alipay has no session key: the session's is
    ``""``, and Alipay's ``access_token`` is not kept.

    Errors by ``sub_code``: ``isv.code-invalid`` (invalid, used or expired code) ``401``;
    ``isv.invalid-app-id``, ``isv.invalid-signature``, ``isv.missing-signature-key``,
    ``isv.invalid-signature-type``, ``isv.insufficient-isv-permissions`` ``502``;
    ``isp.unknow-error``, ``aop.unknow-error`` (code 20000, "服务暂不可用", retry later)
    busy. Sources: opendocs.alipay.com/apis/api_9/alipay.system.oauth.token (mirrored at
    w3cschool.cn/aliminiapp/aliminiapp-osfv2j24.html and docs.antom.com/ac/solution_api/
    oauth_token: the gateway, the common and request parameters, ``user_id``), the
    gateway's common error codes (open.alitrip.com/docs/doc.htm?articleId=105806: 20000
    isp.unknow-error/aop.unknow-error "稍后重试", 40002 isv.invalid-app-id,
    isv.invalid-signature …), opendocs.alipay.com/support/01rg6z (isv.code-invalid), and
    :mod:`wxmiddleware._alipay_keys` for the signature.
    """

    platform = "alipay"
    errors: ClassVar[Mapping[ErrorCode, str]] = {
        "isv.code-invalid": INVALID_CODE,
        "isv.invalid-app-id": MISCONFIGURED,
        "isv.invalid-signature": MISCONFIGURED,
        "isv.missing-signature-key": MISCONFIGURED,
        "isv.invalid-signature-type": MISCONFIGURED,
        "isv.insufficient-isv-permissions": MISCONFIGURED,
        "isp.unknow-error": BUSY,
        "aop.unknow-error": BUSY,
    }

    def request(self, config: WxConfig, login: LoginCode, now: float) -> HttpCall:
        """See :class:`AlipayProvider`; ``now`` (epoch seconds) dates the signature."""
        from .._alipay_keys import sign

        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now + ALIPAY_UTC_OFFSET))
        params = {
            "app_id": config.appid,
            "method": ALIPAY_METHOD,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": stamp,
            "version": "1.0",
        }
        form = {"grant_type": "authorization_code", "code": login.code}
        params["sign"] = sign(config.secret, alipay_signed_content({**params, **form}))
        return HttpCall("POST", config.api_base_of("alipay") + "/gateway.do", params, None, form)

    def parse(self, config: WxConfig, status: int, body: bytes) -> CodeSession:
        """See :class:`AlipayProvider`."""
        from .._alipay_keys import verify

        data = self.answer(status, body)
        failure = data.get("error_response")
        if failure is None and isinstance(data.get(ALIPAY_ANSWER), dict):
            failure = data[ALIPAY_ANSWER] if "sub_code" in data[ALIPAY_ANSWER] else None
        if failure is not None:
            if not isinstance(failure, dict):
                raise UpstreamError("Alipay answered a malformed error_response.")
            sub_code = str(failure.get("sub_code") or "")[:64]
            code = str(failure.get("code") or "")[:16]
            kind = self.errors.get(sub_code) or (BUSY if code == "20000" else None)
            raise refusal(self.platform, kind, sub_code or code, str(failure.get("sub_msg", "")))
        found = data.get(ALIPAY_ANSWER)
        if not isinstance(found, dict):
            raise UpstreamError(f"Alipay answered without {ALIPAY_ANSWER}.")
        raw = alipay_member(body.decode("utf-8"), ALIPAY_ANSWER)
        signature = data.get("sign")
        if (
            raw is None
            or not isinstance(signature, str)
            or not verify(config.public_key, raw.encode("utf-8"), signature)
        ):
            raise UpstreamError(
                "Alipay's answer did not carry Alipay's signature.",
                detail="the sign of alipay_system_oauth_token_response does not verify with"
                " the configured Alipay public key",
            )
        open_id, user_id = _text(found.get("open_id")), _text(found.get("user_id"))
        unionid = user_id if open_id else None
        return self.user(open_id or user_id, None, unionid, key_required=False)


#: One provider per platform, by name.
PROVIDERS: Dict[str, Provider] = {
    provider.platform: provider
    for provider in (
        WeChatProvider(),
        QQProvider(),
        DouyinProvider(),
        BaiduProvider(),
        KuaishouProvider(),
        AlipayProvider(),
    )
}


def exchange_code(config: WxConfig, login: LoginCode) -> Flow[CodeSession]:
    """Exchange ``login`` through the provider of ``config.platform`` (``config`` is one
    app's configuration); see :class:`Provider`."""
    return PROVIDERS[config.platform].exchange(config, login)
