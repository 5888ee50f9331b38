"""The platforms whose exchange is one plain call with the app's secret (:mod:`._providers`):
WeChat, QQ, Douyin, Baidu and Kuaishou, each with its request, its answer's shape and its
documented error codes.
"""

from __future__ import annotations

from typing import ClassVar, Mapping

from ..config import WxConfig
from ..errors import UpstreamError
from ..wechat._protocol import CodeSession
from ._effects import Flow, HttpCall
from ._providers_base import (
    BUSY,
    INVALID_CODE,
    MISCONFIGURED,
    RATE_LIMITED,
    ErrorCode,
    LoginCode,
    Provider,
)
from ._upstream import jscode2session


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
