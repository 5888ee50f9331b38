"""WeChat's APIs without I/O: requests, replies, and the one retry rule.

:class:`ApiRequest` describes any call (jscode2session included), and the parsers turn
replies into results or errors; :func:`retry_delay` is the one retry rule, which
:func:`wxmiddleware.core.exchange` applies to every call. The sync (requests) and async
(aiohttp) transports only move bytes.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from ..config import WxConfig
from ..errors import (
    InvalidCode,
    RateLimited,
    UpstreamBusy,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    UserBlocked,
    WxError,
)
from ._paths import COMPONENT_JSCODE2SESSION_PATH, JSCODE2SESSION_PATH

if TYPE_CHECKING:  # the core imports this module
    from ..core._effects import HttpCall

logger = logging.getLogger("wxmiddleware")

#: A WeChat API reply is a few hundred bytes; anything far larger is not one.
MAX_REPLY_BYTES = 64 * 1024
#: Pause before the single retry (errcode -1 or a failed connect), in seconds.
RETRY_BACKOFF_SECONDS = 0.2
MAX_ATTEMPTS = 2


@dataclass(frozen=True)
class ApiRequest:
    """One call of a WeChat API; the access token is added when it is sent.

    ``params`` go in the query string, ``body`` (when not ``None``) is sent as JSON. Both
    may hold the secret or a user's code, so neither is shown in ``repr``.

    ``secure=True`` marks an API that WeChat's documentation lists as supporting its
    server-API security ("支持加密请求"): with API security configured
    (:attr:`~wxmiddleware.WxConfig.api_sym_key` and the other ``api_*`` fields), the call is
    sealed (:mod:`wxmiddleware.wechat._security`): its ``params`` and ``body`` travel
    encrypted in the body, the query keeps only the access token, and the answer is
    verified and decrypted before ``parse`` sees it. Set it on an :class:`ApiRequest` of
    your own for such an API (``/wxa/getuserriskrank``, say); without API security
    configured it changes nothing.
    """

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict, repr=False)
    body: Optional[Mapping[str, Any]] = field(default=None, repr=False)
    #: ``False`` for calls that carry no access token (jscode2session, the token fetch).
    with_token: bool = True
    #: Sealed under API security when it is configured (see above).
    secure: bool = False

    def url(self, config: WxConfig) -> str:
        """The URL, without a query string (the query goes in ``params=``)."""
        return config.api_base + self.path

    def query(self, access_token: Optional[str]) -> Dict[str, str]:
        """The query parameters, with ``access_token`` when the call carries one."""
        if not self.with_token:
            return dict(self.params)
        if access_token is None:
            raise ValueError(f"{self.path} needs an access token")
        return {"access_token": access_token, **self.params}

    def sealed_fields(self) -> Dict[str, Any]:
        """What a sealed call encrypts: the query parameters and the body's fields together
        (the guide: "包含原API使用的URL参数与POST参数, 不包含AccessToken")."""
        return {**self.params, **(self.body or {})}


@dataclass(frozen=True)
class CodeSession:
    """What jscode2session (or another platform's code exchange) returns for a valid code.

    ``anonymous_id``: the user's anonymous id on a platform that has one (Douyin's
    ``anonymous_openid``, for the ``anonymous_code`` sent beside the code).
    """

    openid: str
    session_key: str = field(repr=False)
    unionid: Optional[str] = None
    anonymous_id: Optional[str] = None


def jscode2session_request(config: WxConfig, code: str) -> ApiRequest:
    """``GET /sns/jscode2session`` for a ``wx.login()`` code (WeChat's code2Session).

    The query goes in ``params=``: the HTTP client URL-encodes it, so a code cannot inject
    parameters.
    """
    params = {
        "appid": config.appid,
        "secret": config.secret,
        "js_code": code,
        "grant_type": "authorization_code",
    }
    return ApiRequest("GET", JSCODE2SESSION_PATH, params=params, with_token=False)


#: The errcode of a third-party platform's login for a mini-program that has not
#: authorised the platform ("component is not authorized by this account").
COMPONENT_NOT_AUTHORIZED_ERRCODE = 61003


def component_jscode2session_request(
    config: WxConfig, code: str, component_access_token: str
) -> ApiRequest:
    """``GET /sns/component/jscode2session``: a third-party platform logs a user of the
    mini-program ``config.appid`` in, in the mini-program's stead (thirdpartyCode2Session).

    Query: ``appid`` (the mini-program's), ``js_code``, ``grant_type=authorization_code``,
    ``component_appid`` (the platform's) and ``component_access_token`` (the platform's
    credential, a query parameter; never logged). The answer is jscode2session's
    (``openid``, ``session_key``, ``unionid`` or an ``errcode``), parsed by
    :func:`parse_jscode2session`; errcode 61003 says the mini-program has not authorised
    the platform. Sources (developers.weixin.qq.com/doc/oplatform/...):
    openApi/OpenApiDoc/miniprogram-management/others/thirdpartyCode2Session.html and
    Third-party_Platforms/2.0/api/others/WeChat_login.html.
    """
    params = {
        "appid": config.appid,
        "js_code": code,
        "grant_type": "authorization_code",
        "component_appid": config.component_appid,
        "component_access_token": component_access_token,
    }
    return ApiRequest("GET", COMPONENT_JSCODE2SESSION_PATH, params=params, with_token=False)


class ReplyCollector:
    """Accumulates a reply body, refusing one that is too large or arrives too slowly.

    ``deadline`` is a :func:`time.monotonic` instant; ``limit`` is in bytes.
    """

    def __init__(self, deadline: float, limit: int = MAX_REPLY_BYTES) -> None:
        self._deadline = deadline
        self._limit = limit
        self._chunks: List[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        """Add a chunk; raise when the body is too large or the deadline passed."""
        self._size += len(chunk)
        if self._size > self._limit:
            raise UpstreamError(f"WeChat answered more than {self._limit} bytes.")
        if time.monotonic() > self._deadline:
            raise UpstreamTimeout()
        self._chunks.append(chunk)

    @property
    def body(self) -> bytes:
        """Everything fed so far."""
        return b"".join(self._chunks)

    @property
    def size(self) -> int:
        """How many bytes were fed so far."""
        return self._size


def log_reply(method: str, url: str, status: int, size: int, started: float) -> None:
    """One DEBUG record per answer from WeChat: the path only (its query holds the secret)."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    logger.debug(
        "WeChat %s %s: HTTP %d, %d bytes in %.0f ms",
        method,
        urlsplit(url).path,
        status,
        size,
        1000 * (time.monotonic() - started),
    )


def answer_headers(headers: Mapping[str, str], names: Tuple[str, ...]) -> Dict[str, str]:
    """The answer headers ``names`` (lower case) that ``headers`` (an HTTP client's
    case-insensitive mapping) has, keyed by those names."""
    return {name: headers[name] for name in names if name in headers}


def request_options(call: HttpCall, timeout: Any) -> Dict[str, Any]:
    """The keyword arguments of ``request(method, url, ...)`` for ``call``, in the names
    requests' ``Session.request`` and aiohttp's ``ClientSession.request`` share: the query
    (URL-encoded by the client), the JSON or form or raw body, the headers, the client's own
    ``timeout`` object, and no redirects followed."""
    return {
        "params": call.params,
        "json": call.body,
        "data": call.form if call.content is None else call.content,
        "headers": call.headers,
        "timeout": timeout,
        "allow_redirects": False,
    }


def reply_deadline(config: WxConfig) -> float:
    """When a whole exchange must be over: a slow drip may not hold a worker forever."""
    return time.monotonic() + config.connect_timeout + config.read_timeout


def error_for_errcode(errcode: int, errmsg: str) -> WxError:
    """Map a jscode2session ``errcode`` to the error the client sees (the README's Errors table)."""
    if errcode == -1:
        return UpstreamBusy(errcode=errcode)
    if errcode in (40029, 40163):
        return InvalidCode(errcode=errcode)
    if errcode == 45011:
        return RateLimited(errcode=errcode, headers=[("Retry-After", "60")])
    if errcode == 40226:
        return UserBlocked(errcode=errcode)
    if errcode in (40013, 40125):
        return UpstreamError(
            "The login service is misconfigured.",
            errcode=errcode,
            detail="WeChat rejected the appid or secret: check WX_APPID and WX_SECRET",
        )
    if errcode == COMPONENT_NOT_AUTHORIZED_ERRCODE:
        return UpstreamError(
            "The login service is misconfigured.",
            errcode=errcode,
            detail="errcode 61003: the mini-program has not authorised the third-party"
            " platform (component_appid) to log its users in",
        )
    return UpstreamError(
        f"WeChat refused the login (errcode {errcode}).",
        errcode=errcode,
        detail=f"errmsg {errmsg[:100]!r}",
    )


def reply_object(status: int, body: bytes) -> Dict[str, Any]:
    """The JSON object of a WeChat API reply, which is HTTP 200 even when the call failed."""
    if status != 200:
        raise UpstreamError(f"WeChat answered HTTP {status}.")
    try:
        data: Any = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise UpstreamError("WeChat answered something that is not JSON.") from None
    if not isinstance(data, dict):
        raise UpstreamError("WeChat answered JSON that is not an object.")
    return data


def reply_errcode(data: Dict[str, Any]) -> int:
    """A reply's ``errcode``: 0 when it is absent (success), else the failure's number."""
    errcode = data.get("errcode", 0)
    if errcode is None:
        return 0
    if isinstance(errcode, bool) or not isinstance(errcode, int):
        raise UpstreamError("WeChat answered a malformed errcode.")
    return errcode


def parse_jscode2session(status: int, body: bytes) -> CodeSession:
    """Parse a reply: WeChat answers 200 even on failure, with an ``errcode`` in the body."""
    data = reply_object(status, body)
    errcode = reply_errcode(data)
    if errcode:
        raise error_for_errcode(errcode, str(data.get("errmsg", "")))
    openid = data.get("openid")
    session_key = data.get("session_key")
    unionid = data.get("unionid")
    if (
        not isinstance(openid, str)
        or not openid
        or not isinstance(session_key, str)
        or not session_key
    ):
        raise UpstreamError("WeChat answered without an openid or session_key.")
    if unionid is not None and not (isinstance(unionid, str) and unionid):
        unionid = None
    return CodeSession(openid=openid, session_key=session_key, unionid=unionid)


def retry_delay(attempt: int, error: WxError) -> Optional[float]:
    """Seconds to wait before trying again, or ``None`` to give up.

    A code is single-use, so only failures that cannot have spent it are retried: errcode -1
    (WeChat says it did nothing) and a connection that never opened. A read timeout is
    never retried: the request may have reached WeChat.
    """
    if attempt < MAX_ATTEMPTS and isinstance(error, (UpstreamBusy, UpstreamUnreachable)):
        return RETRY_BACKOFF_SECONDS
    return None
