"""One exception family: every error knows its HTTP status, its error word and its message.

Messages are written for the client and for the log alike, so they never carry the app
secret, a session_key, a token or the query string sent to WeChat.
"""

from __future__ import annotations

from typing import ClassVar, Optional, Sequence, Tuple


class ConfigError(ValueError):
    """The configuration is unusable; raised at start-up, never while serving."""


class WxError(Exception):
    """Base of every error the middleware turns into a JSON answer."""

    status: ClassVar[int] = 500
    error: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "The login service failed."

    def __init__(
        self,
        message: Optional[str] = None,
        *,
        errcode: Optional[int] = None,
        headers: Sequence[Tuple[str, str]] = (),
        detail: Optional[str] = None,
    ) -> None:
        self.message = message or self.default_message
        self.errcode = errcode
        self.headers = tuple(headers)
        # For the operator's log only; like the message, it never holds a secret.
        self.detail = detail
        super().__init__(self.message)


class BadRequest(WxError):
    status = 400
    error = "bad_request"
    default_message = "The request is malformed."


class NotFound(WxError):
    status = 404
    error = "not_found"
    default_message = "Nothing is served at this path."


class MethodNotAllowed(WxError):
    status = 405
    error = "method_not_allowed"
    default_message = "This path does not accept that method."


class InvalidSession(WxError):
    status = 401
    error = "invalid_session"
    default_message = "The session is missing, unknown or expired; log in again."


class InvalidCode(WxError):
    status = 401
    error = "invalid_code"
    default_message = "The login code is invalid or was already used; call wx.login() again."


class UserBlocked(WxError):
    status = 403
    error = "user_blocked"
    default_message = "WeChat refused this user (high-risk account)."


class RateLimited(WxError):
    status = 429
    error = "rate_limited"
    default_message = "Too many logins for this user; try again in a minute."


class UpstreamError(WxError):
    """WeChat could not be reached or gave an unusable answer (502)."""

    status = 502
    error = "upstream_error"
    default_message = "The WeChat login service gave an unusable answer."


class UpstreamBusy(WxError):
    status = 503
    error = "upstream_busy"
    default_message = "The WeChat login service is busy; try again shortly."


class UpstreamTimeout(WxError):
    status = 504
    error = "upstream_timeout"
    default_message = "The WeChat login service did not answer in time."


class StoreUnavailable(WxError):
    status = 503
    error = "store_unavailable"
    default_message = "The session store is unavailable; try again shortly."


class UnsupportedMediaType(WxError):
    status = 415
    error = "unsupported_media_type"
    default_message = "Send the login code as JSON or as a form."


class UpstreamUnreachable(UpstreamError):
    """The connection to WeChat failed before the request was sent (safe to retry)."""

    error = "upstream_unreachable"
    default_message = "The WeChat login service could not be reached."
