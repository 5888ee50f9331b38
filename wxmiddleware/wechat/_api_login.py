"""WeChat's user-login server APIs (OpenApiDoc "user-login") beside jscode2session:
``checksession`` and ``resetusersessionkey``, as requests and reply parsers. Both are signed
with the user's session_key (:func:`signed_by_session`), which never leaves the server.
"""

from __future__ import annotations

from typing import Dict

from ..errors import UpstreamError
from ..session import WxSession, sign_with_session_key
from ._api_replies import SESSION_KEY_EXPIRED_ERRCODE, api_error, parse_reply
from ._paths import CHECK_SESSION_PATH, RESET_SESSION_KEY_PATH
from ._protocol import ApiRequest, reply_errcode, reply_object


def signed_by_session(session: WxSession) -> Dict[str, str]:
    """The user-state signature a call about ``session``'s user carries (``openid``,
    ``signature``, ``sig_method``): the key itself never leaves the server."""
    return {
        "openid": session.openid,
        "signature": sign_with_session_key(session, ""),
        "sig_method": "hmac_sha256",
    }


def check_session_request(session: WxSession) -> ApiRequest:
    """``GET /wxa/checksession``: is ``session``'s session_key still the user's current one?

    The session_key itself never leaves the server: WeChat gets its HMAC signature.
    """
    return ApiRequest("GET", CHECK_SESSION_PATH, params=signed_by_session(session))


def reset_session_key_request(session: WxSession) -> ApiRequest:
    """``GET /wxa/resetusersessionkey`` (access_token, openid, signature, sig_method): WeChat
    issues the user a new session_key, keeping the old one's expiry.

    Source: developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/user-login/ResetUserSessionKey.html;
    the answer is ``{"errcode": 0, "errmsg": "ok", "openid", "session_key"}``.
    """
    return ApiRequest("GET", RESET_SESSION_KEY_PATH, params=signed_by_session(session))


def parse_check_session(status: int, body: bytes) -> bool:
    """Parse a checksession reply: ``True`` for errcode 0, ``False`` for 87009."""
    data = reply_object(status, body)
    errcode = reply_errcode(data)
    if errcode == SESSION_KEY_EXPIRED_ERRCODE:
        return False
    if errcode:
        raise api_error(errcode, str(data.get("errmsg", "")))
    return True


def parse_reset_session_key(status: int, body: bytes) -> str:
    """Parse a resetusersessionkey reply: the user's new session_key.

    87009/87008 raise :class:`~wxmiddleware.errors.InvalidSession` (401), 45011
    :class:`~wxmiddleware.errors.RateLimited` (429), as :func:`api_error` maps them.
    """
    key = parse_reply(status, body).get("session_key")
    if not isinstance(key, str) or not key:
        raise UpstreamError("WeChat answered a session key reset without a session_key.")
    return key
