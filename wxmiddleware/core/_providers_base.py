"""What every platform's code exchange shares (:mod:`._providers`): the :class:`Provider`
interface and its answer readers, what the mini-program sent (:class:`LoginCode`), and the
meanings of a platform's error codes, mapped once onto the package's errors
(:func:`refusal`).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Dict, Mapping, NamedTuple, Optional, Tuple, Type, Union

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
from ._upstream import send

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
    if kind == RATE_LIMITED:
        return RateLimited(errcode=errcode, headers=[("Retry-After", "60")], detail=detail)
    if kind == MISCONFIGURED:
        return UpstreamError(
            "The login service is misconfigured.",
            errcode=errcode,
            detail=f"{info.title} rejected the app's credentials ({detail}): check its appid"
            " and secret (Alipay: its keys)",
        )
    answers: Dict[Optional[str], Tuple[Type[WxError], str]] = {
        INVALID_CODE: (
            InvalidCode,
            f"The login code is invalid or was already used; call {info.login} again.",
        ),
        BUSY: (UpstreamBusy, f"The {info.title} login service is busy; try again shortly."),
        BLOCKED: (UserBlocked, f"{info.title} refused this user."),
    }
    error, said = answers.get(
        kind, (UpstreamError, f"{info.title} refused the login (error {code}).")
    )
    return error(said, errcode=errcode, detail=detail)


def text(value: Any) -> Optional[str]:
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
        user_id, key = text(openid), text(session_key)
        if user_id is None or (key_required and key is None):
            title = PLATFORM_INFO[self.platform].title
            raise UpstreamError(f"{title} answered without a user id or session key.")
        return CodeSession(user_id, key or "", text(unionid), text(anonymous_id))
