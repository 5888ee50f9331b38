"""Every call to WeChat (and every platform's code exchange, :mod:`._providers`), through
one flow with the one retry rule."""

from __future__ import annotations

import inspect
from typing import Callable, Optional, TypeVar

from ..config import WxConfig
from ..errors import UpstreamError, WxError
from ..wechat._protocol import (
    ApiRequest,
    CodeSession,
    component_jscode2session_request,
    jscode2session_request,
    parse_jscode2session,
    retry_delay,
)
from ._effects import Flow, HttpCall, Invoke, Sleep

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
    return (yield from send(call, parse))


def send(call: HttpCall, parse: Callable[[int, bytes], _T]) -> Flow[_T]:
    """Send ``call`` and return ``parse(status, body)``, under :func:`retrying`."""

    def attempt() -> Flow[_T]:
        status, body = yield call
        return parse(status, body)

    return (yield from retrying(attempt))


def retrying(attempt: Callable[[], Flow[_T]]) -> Flow[_T]:
    """Run the flow ``attempt()`` returns, with :func:`exchange`'s one retry rule: a new
    ``attempt()`` runs once more only after an :class:`~wxmiddleware.errors.UpstreamBusy` (a
    platform that says it did nothing) or :class:`~wxmiddleware.errors.UpstreamUnreachable`
    (:func:`retry_delay`)."""
    number = 1
    while True:
        try:
            return (yield from attempt())
        except WxError as error:
            delay = retry_delay(number, error)
            if delay is None:
                raise
        yield Sleep(delay)
        number += 1


def jscode2session(config: WxConfig, code: str) -> Flow[CodeSession]:
    """Exchange a ``wx.login()`` code for openid, session_key and unionid (WeChat's
    code2Session), through :func:`exchange` and its one retry.

    An app without a secret (``config`` is one app's, :meth:`WxConfig.for_app`) logs in
    through its third-party platform: :func:`component_jscode2session`.
    """
    if not config.secret:
        return component_jscode2session(config, code)
    return exchange(config, jscode2session_request(config, code), parse_jscode2session)


def component_jscode2session(config: WxConfig, code: str) -> Flow[CodeSession]:
    """The exchange of :func:`jscode2session` made by the third-party platform
    ``config.component_appid`` (``/sns/component/jscode2session``), with the
    ``component_access_token`` that ``config.component_token(component_appid)`` gives.

    A ``component_token`` that fails, or gives no token (a coroutine function under the
    WSGI middleware gives a coroutine), is a ``502`` whose log line names it; errcode
    61003 (the mini-program has not authorised the platform) is a ``502`` too.
    """
    assert config.component_token is not None  # WxConfig requires it for such an app
    try:
        token = yield Invoke(config.component_token, (config.component_appid,))
    except WxError:
        raise
    except Exception as error:
        raise UpstreamError(
            "The login service is misconfigured.",
            detail=f"component_token failed: {type(error).__name__}",
        ) from None
    if not isinstance(token, str) or not token:
        if inspect.iscoroutine(token):
            token.close()  # an async component_token under WSGI: never awaited
        raise UpstreamError(
            "The login service is misconfigured.",
            detail="component_token gave no component_access_token (a string); under"
            " the WSGI middleware it must be a plain function",
        )
    request = component_jscode2session_request(config, code, token)
    return (yield from exchange(config, request, parse_jscode2session))
