"""Every call to WeChat, through one flow with the one retry rule."""

from __future__ import annotations

from typing import Callable, Optional, TypeVar

from ..config import WxConfig
from ..errors import WxError
from ..wechat._protocol import (
    ApiRequest,
    CodeSession,
    jscode2session_request,
    parse_jscode2session,
    retry_delay,
)
from ._effects import Flow, HttpCall, Sleep

_T = TypeVar("_T")


def exchange(
    config: WxConfig,
    request: ApiRequest,
    parse: Callable[[int, bytes], _T],
    access_token: Optional[str] = None,
) -> Flow[_T]:
    """Send ``request`` and return ``parse(status, body)``; the one retry rule of the package.

    ``parse`` raises the :class:`~wxmiddleware.errors.WxError` a failed reply maps to. After
    errcode -1 or a connection that never opened (:func:`retry_delay`), the call is made once
    more; nothing else is retried, so a single-use code (a login or phone-number code) is
    never spent twice.
    """
    call = HttpCall(request.method, request.url(config), request.query(access_token), request.body)
    attempt = 1
    while True:
        try:
            status, body = yield call
            return parse(status, body)
        except WxError as error:
            delay = retry_delay(attempt, error)
            if delay is None:
                raise
        yield Sleep(delay)
        attempt += 1


def jscode2session(config: WxConfig, code: str) -> Flow[CodeSession]:
    """Exchange a ``wx.login()`` code for openid, session_key and unionid (WeChat's
    code2Session), through :func:`exchange` and its one retry."""
    return exchange(config, jscode2session_request(config, code), parse_jscode2session)
