"""Reading WeChat's server API replies: the JSON object of an answer, or the package's error
its ``errcode`` maps to (:func:`api_error`), for every server API alike.
"""

from __future__ import annotations

from typing import Any, Dict

from ..errors import (
    InvalidCode,
    InvalidSession,
    RateLimited,
    UpstreamBusy,
    UpstreamError,
    WxError,
)
from ._protocol import reply_errcode, reply_object
from ._security_errors import SECURITY_ERRCODES, security_refusal

#: errcodes saying the access token a call carried is invalid (40001, 40014) or expired
#: (42001): the token is dropped and the call made once more with a fresh one.
TOKEN_REJECTED_ERRCODES = frozenset({40001, 40014, 42001})
#: checksession's answer for a session_key that is no longer the user's current one.
SESSION_KEY_EXPIRED_ERRCODE = 87009
#: errcodes of the calls signed with a session_key (resetusersessionkey, getuserencryptkey)
#: that say WeChat no longer accepts the session: 87009, an invalid signature (the key is
#: no longer the user's current one), and 87008 (WeChat refuses the user's session).
SESSION_REFUSED_ERRCODES = frozenset({87008, SESSION_KEY_EXPIRED_ERRCODE})


class AccessTokenRejected(UpstreamError):
    """WeChat refused the access token a call carried (errcode 40001, 40014 or 42001).

    The managers drop the token and retry the call once with a fresh one; this reaches the
    caller only when WeChat refuses the fresh token too.
    """

    error = "access_token_rejected"
    default_message = "WeChat rejected the app's access token."


def api_error(errcode: int, errmsg: str) -> WxError:
    """Map a server API ``errcode`` to the error the caller sees."""
    if errcode in TOKEN_REJECTED_ERRCODES:
        return AccessTokenRejected(errcode=errcode)
    if errcode in SECURITY_ERRCODES:
        return security_refusal(errcode)
    if errcode in SESSION_REFUSED_ERRCODES:
        return InvalidSession(
            "WeChat no longer accepts this session's key; log in again.", errcode=errcode
        )
    if errcode == -1:
        return UpstreamBusy(errcode=errcode)
    if errcode == 40029:
        return InvalidCode(
            "The code is invalid, expired or was already used; get a new one.", errcode=errcode
        )
    if errcode == 45011:
        return RateLimited(errcode=errcode, headers=[("Retry-After", "60")])
    if errcode in (40013, 40125, 40164):
        cause = (
            "this server's IP address is not on the mini-program's API IP whitelist"
            if errcode == 40164
            else "WeChat rejected the appid or secret: check WX_APPID and WX_SECRET"
        )
        return UpstreamError("The WeChat API is misconfigured.", errcode=errcode, detail=cause)
    return UpstreamError(
        f"WeChat refused the call (errcode {errcode}).",
        errcode=errcode,
        detail=f"errmsg {errmsg[:100]!r}",
    )


def parse_reply(status: int, body: bytes) -> Dict[str, Any]:
    """Parse any JSON server API reply: the object, or the error its ``errcode`` maps to.

    Pass it to :meth:`~wxmiddleware.wechat.api.AccessTokenManager.call` for an API this
    package does not wrap; a refused token then gets its one retry like any other call.
    """
    data = reply_object(status, body)
    errcode = reply_errcode(data)
    if errcode:
        raise api_error(errcode, str(data.get("errmsg", "")))
    return data
