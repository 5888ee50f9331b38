"""The middleware's own endpoints: the login and logout flows.

:func:`answer` runs one request to the login or logout path as a flow of effects
(:mod:`._effects`): the Wafer or JSON login (method, app, rate limits, body, code, the
exchange with the platform, the ``on_login`` hook) or the logout (token, app, the store's
``delete``, the ``on_logout`` hook), and ends in the outcome the
:class:`~._pipeline.Pipeline` shapes. Every failure is shaped by
:meth:`~._pipeline.Pipeline.failure`.
"""

from __future__ import annotations

import logging
from types import GeneratorType
from typing import TYPE_CHECKING, Any, Dict, Optional, cast

from ..errors import BadRequest, MethodNotAllowed, StoreUnavailable, WxError
from ..observe import BAD_REQUEST, INVALID, MISSING, RATE_LIMITED, STORE_DOWN
from ..session import code_key, short_hash, token_key
from ._effects import CallHook, Flow, ReadBody, StoreCall
from ._limits import LoginRateLimited
from ._login import login_flow
from ._outcomes import Outcome
from ._request import (
    body_length,
    body_too_large,
    check_login_method,
    check_logout_method,
    login_code_from_query,
    login_from_body,
    missing_token_error,
)
from ._responses import Response, log_failure, login_response, logout_response
from ._routing import RequestKind
from ._view import RequestView
from ._wafer import wafer_login, wafer_login_response, wafer_userinfo

if TYPE_CHECKING:
    from ._pipeline import Pipeline

logger = logging.getLogger("wxmiddleware")

_LOGIN = RequestKind.LOGIN
_LOGOUT = RequestKind.LOGOUT


def answer(pipeline: Pipeline, view: RequestView, kind: RequestKind) -> Flow[Outcome]:
    observer = pipeline.observer
    activity = None
    if observer is not None and kind is _LOGIN:
        activity = observer.login_started()
    ended: Dict[str, Any] = {}
    failed: Optional[BaseException] = None
    try:
        if kind is _LOGIN:
            response = yield from _login(pipeline, view, ended)
        else:
            response = yield from _logout(pipeline, view)
    except Exception as error:
        failed = error
        reason = _refusal_reason(kind, error)
        if kind is _LOGIN:
            _login_ended(pipeline, ended, error)
        plan = pipeline.failure(view, kind, error, reason)
        if type(plan) is GeneratorType:
            outcome: Outcome = yield from cast("Flow[Outcome]", plan)
            return outcome
        return cast(Outcome, plan)
    except BaseException as error:  # cancelled (asyncio) or closed: the login ends too
        failed = error
        raise
    finally:
        if activity is not None:
            activity.end(failed, ended)
    if kind is _LOGIN:
        _login_ended(pipeline, ended, None)
    return pipeline.respond(view, response)


def _login_ended(pipeline: Pipeline, ended: Dict[str, Any], error: Optional[Exception]) -> None:
    """Note how a login ended in ``ended`` (``outcome``, ``errcode``; ``error``, when
    given, overrides what the flow noted) and tell the observer."""
    if error is not None:
        ended["outcome"] = error.error if isinstance(error, WxError) else "internal_error"
        ended["errcode"] = error.errcode if isinstance(error, WxError) else None
    if pipeline.observer is not None:
        pipeline.observer.login(ended["outcome"], ended.get("errcode"))


def _read_body(pipeline: Pipeline, view: RequestView) -> Flow[bytes]:
    config = pipeline.config
    names = pipeline.header_names
    length = body_length(view.headers.get(names.content_length), config)
    if length == 0:
        return b""
    if length is None and not view.body_framed:
        if view.headers.get(names.transfer_encoding):
            raise BadRequest("Send the login body with a Content-Length.")
        return b""
    try:
        body: bytes = yield ReadBody(length, config.max_body_bytes)
    except (OSError, ValueError):
        raise BadRequest("The login body could not be read.") from None
    # A chunked body has no length to check up front: the reader stops past the limit.
    if len(body) > config.max_body_bytes:
        raise body_too_large(config)
    return body


def _login(pipeline: Pipeline, view: RequestView, ended: Dict[str, Any]) -> Flow[Response]:
    config = pipeline.config
    wafer = wafer_login(config, view.headers, pipeline.header_names)
    check_login_method(view.method, config, wafer is not None)
    # The app's own configuration (appid, secret): before the body, the limits, WeChat.
    app = config if pipeline.apps is None else pipeline.apps.select(view.headers).config
    if pipeline.limits is not None:
        # Before the body is read: a flood of logins costs no WeChat call, no write.
        yield from pipeline.limits.check(view)
    # A code from a URL sits in access logs: it gets no idempotent replay.
    in_url = wafer is None and view.method == "GET"
    anonymous_code = None
    if wafer is not None:
        code = wafer.code
    elif in_url:
        code = login_code_from_query(view.query)
    else:
        body = yield from _read_body(pipeline, view)
        content_type = view.headers.get(pipeline.header_names.content_type)
        code, anonymous_code = login_from_body(content_type, body)
    subject = f"code={short_hash(code_key(code))}"
    try:
        token, session, fresh = yield from login_flow(
            code, app, replayable=not in_url, anonymous_code=anonymous_code
        )
        # Undecryptable user info keeps the session: the same code with data that
        # decrypts (wx.getUserInfo called again) gets it.
        userinfo = None if wafer is None else wafer_userinfo(wafer, session, app)
    except WxError as error:
        log_failure("login", error, subject)
        raise
    session_hash = short_hash(token_key(token))
    ended["outcome"] = "success" if fresh else "replay"
    logger.info(
        "login: session %s",
        session_hash,
        extra={"event": "login", "outcome": ended["outcome"], "session_hash": session_hash},
    )
    extra = None
    if pipeline.has_login_hook:
        try:
            extra = yield CallHook(session, userinfo)
        except Exception:
            if fresh:
                # The hook failed, the client gets a 500 and no token: the session this
                # login made must not outlive it (a retry of the code: invalid_code).
                yield from _end_session(token)
            raise
    if userinfo is None:
        return login_response(token, session, config, extra)
    return wafer_login_response(token, userinfo, extra)


def _end_session(token: str) -> Flow[None]:
    try:
        yield StoreCall("delete", (token,))
    except Exception as error:  # the login's own failure is the one to answer
        logger.warning(
            "login: session %s could not be ended after the login failed (%s)",
            short_hash(token_key(token)),
            type(error).__name__,
        )


def _logout(pipeline: Pipeline, view: RequestView) -> Flow[Response]:
    check_logout_method(view.method)
    try:
        token = pipeline.token(view.headers)
    except WxError as error:
        raise _Refusal(error, INVALID) from None
    if token is None:
        raise _Refusal(missing_token_error(pipeline.config), MISSING)
    session_hash = short_hash(token_key(token))
    session = None
    scope = pipeline.scope
    if pipeline.apps is not None:
        try:
            scope = pipeline.apps.select(view.headers).scope
        except WxError as error:
            raise _Refusal(error, BAD_REQUEST) from None
    try:
        if pipeline.on_logout or pipeline.apps is not None:
            # The hook is told whose session ended; another app's token ends nothing.
            session = yield StoreCall("get", (token, pipeline.idle_ttl, scope))
        ended = False
        if session is not None or pipeline.apps is None:
            ended = yield StoreCall("delete", (token,))
    except WxError as error:
        log_failure("logout", error, session_hash)
        raise
    if pipeline.observer is not None:
        pipeline.observer.logout(bool(ended))
    if ended:
        logger.info(
            "logout: session %s",
            session_hash,
            extra={"event": "logout", "session_hash": session_hash},
        )
        if session is not None and pipeline.on_logout:
            yield from pipeline.notify("logout", session)
    return logout_response()


class _Refusal(WxError):
    """A login or logout refused for a :mod:`wxmiddleware.observe` reason: it answers as
    ``error`` does (its status, word, message and headers)."""

    def __init__(self, error: WxError, reason: str) -> None:
        super().__init__(error.message, errcode=error.errcode, headers=error.headers)
        self.status = error.status  # type: ignore[misc]
        self.error = error.error  # type: ignore[misc]
        self.reason = reason


def _refusal_reason(kind: RequestKind, error: Exception) -> Optional[str]:
    """The rejection reason of a failed login or logout, or ``None`` when it is not one (a
    login WeChat refused is a login outcome, not a rejection)."""
    if isinstance(error, _Refusal):
        return error.reason
    if isinstance(error, LoginRateLimited):
        return RATE_LIMITED
    if isinstance(error, MethodNotAllowed):  # a wrong method, on either path
        return BAD_REQUEST
    if kind is _LOGOUT and isinstance(error, WxError):
        return STORE_DOWN if isinstance(error, StoreUnavailable) else BAD_REQUEST
    return None
