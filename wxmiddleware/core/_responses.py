"""Every answer the middleware gives itself, as a :class:`Response` independent of WSGI/ASGI."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from ..config import WxConfig
from ..errors import WxError
from ..session import WxSession

logger = logging.getLogger("wxmiddleware")

_JSON_HEADERS = (
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
)


@dataclass(frozen=True)
class Response:
    """An answer the middleware gives itself: status, headers (name, value) and body bytes."""

    status: int
    headers: Tuple[Tuple[str, str], ...]
    body: bytes

    @property
    def status_line(self) -> str:
        """The WSGI status line, e.g. ``"401 Unauthorized"``."""
        return f"{self.status} {HTTPStatus(self.status).phrase}"

    @property
    def close_code(self) -> int:
        """The ``websocket.close`` code that refuses a websocket instead: ``4000 + status``.

        Servers turn a close sent before the accept into an HTTP 403 to the handshake.
        """
        return 4000 + self.status


def head_response(response: Response) -> Response:
    """``response`` as the answer to ``HEAD``: the same status and headers, no body.

    RFC 9110, section 9.3.2: a ``HEAD`` answer is the ``GET`` answer without its content,
    and its ``Content-Length`` (section 8.6) is the length the ``GET`` answer's body would
    have, so it stays. A body sent anyway would be read as the start of the next answer on a
    kept-alive connection.
    """
    return Response(response.status, response.headers, b"")


def json_response(
    status: int, payload: Mapping[str, Any], headers: Iterable[Tuple[str, str]] = ()
) -> Response:
    """A JSON answer that no cache keeps."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(
        status,
        (*_JSON_HEADERS, ("Content-Length", str(len(body))), *headers),
        body,
    )


def error_response(error: WxError, wafer: bool = False) -> Response:
    """The JSON answer for any :class:`WxError`: ``{"error", "message"[, "errcode"]}``.

    With ``wafer`` (see :func:`wxmiddleware.core.wafer_error`), Wafer's ``"code": -1`` leads
    the same body. A ``401`` carries ``WWW-Authenticate`` (RFC 9110, section 11.6.1).
    """
    payload: Dict[str, Any] = {"code": -1} if wafer else {}
    payload["error"] = error.error
    payload["message"] = error.message
    if error.errcode is not None:
        payload["errcode"] = error.errcode
    headers = list(error.headers)
    if error.status == 401:
        headers.append(("WWW-Authenticate", 'WxSession realm="wxmiddleware"'))
    return json_response(error.status, payload, headers)


def logout_response() -> Response:
    """The answer to a logout: ``204`` with no body."""
    return Response(204, (("Cache-Control", "no-store"),), b"")


def login_response(
    token: str,
    session: WxSession,
    config: WxConfig,
    extra: Optional[Mapping[str, Any]] = None,
    now: Optional[float] = None,
) -> Response:
    """``200 {"3rd_session": TOKEN, "expires_in": SECONDS}`` (plus opt-in fields).

    ``expires_in`` is the idle timeout, or less when the absolute cap comes first; fields
    from ``on_login`` (``extra``) never replace ours.
    """
    now = time.time() if now is None else now
    payload: Dict[str, Any] = {
        "3rd_session": token,
        "expires_in": max(0, int(min(config.session_ttl, session.expires_at - now))),
    }
    if config.expose_openid:
        payload["openid"] = session.openid
        if session.unionid is not None:
            payload["unionid"] = session.unionid
    if extra:
        for name, value in extra.items():
            payload.setdefault(name, value)
    return json_response(200, payload)


def log_failure(action: str, error: WxError, subject: str = "") -> None:
    """One log line per failed login/logout/store access, naming its cause, never a secret.

    The record carries ``extra`` fields for JSON log formatters: ``event`` (``action``),
    ``error`` (the error word), ``status``, ``errcode`` (WeChat's, or ``None``) and
    ``subject`` (``code=<hash>`` or a session's short hash, or ``""``).
    """
    # A misconfiguration or an unusable WeChat needs the operator; a busy one, attention;
    # a bad client request, a record.
    if error.status in (500, 502):
        level = logging.ERROR
    elif error.status >= 500:
        level = logging.WARNING
    else:
        level = logging.INFO
    logger.log(
        level,
        "%s failed: %s %s%s%s%s",
        action,
        error.status,
        error.error,
        f" errcode={error.errcode}" if error.errcode is not None else "",
        f" ({error.detail})" if error.detail else "",
        f" {subject}" if subject else "",
        extra={
            "event": action,
            "error": error.error,
            "status": error.status,
            "errcode": error.errcode,
            "subject": subject,
        },
    )
