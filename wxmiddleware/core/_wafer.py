"""The dialect of Tencent's Wafer client SDK (wafer2-client-sdk), read and answered once.

With ``wafer_compat``, a login whose code arrives in ``X-WX-Code`` is a Wafer login: its
answer is ``{"code": 0, "data": {"skey", "userinfo"}}`` and its errors lead with
``"code": -1``; so does a ``401`` to a request that sent ``X-WX-Skey``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from ..config import WxConfig
from ..crypto import decrypt_data
from ..errors import BadRequest, WxError
from ..session import WxSession
from ._request import check_code, check_text
from ._responses import Response, json_response
from ._routing import RequestKind
from ._view import (
    WAFER_CODE_HEADER,
    WAFER_ENCRYPTED_DATA_HEADER,
    WAFER_IV_HEADER,
    HeaderMap,
    HeaderNames,
)

logger = logging.getLogger("wxmiddleware")

# What wafer2-client-sdk (lib/login.js) sends in X-WX-Encrypted-Data / X-WX-IV when
# wx.getUserInfo gave it nothing: JavaScript's String(undefined) and String(null).
_UNSET = ("undefined", "null")

__all__ = [
    "WAFER_CODE_HEADER",
    "WAFER_ENCRYPTED_DATA_HEADER",
    "WAFER_IV_HEADER",
    "WaferLogin",
    "wafer_error",
    "wafer_login",
    "wafer_login_response",
    "wafer_userinfo",
]


@dataclass(frozen=True)
class WaferLogin:
    """A login from a Wafer client: the code, and the user info it sent encrypted, if any."""

    code: str = field(repr=False)
    encrypted_data: Optional[str] = field(default=None, repr=False)
    iv: Optional[str] = field(default=None, repr=False)


def wafer_login(config: WxConfig, headers: HeaderMap, names: HeaderNames) -> Optional[WaferLogin]:
    """Read a Wafer login from its headers; ``None`` when the request is not one.

    A login request is a Wafer login when ``wafer_compat`` is on and it carries ``X-WX-Code``
    (even empty, which is then refused); its body and query string are not read. The code is
    checked like a body's. ``X-WX-Encrypted-Data`` and ``X-WX-IV`` come together or not at all
    (empty counts as absent), and together stay within ``max_body_bytes``. A comma means the
    header was sent twice (servers join repeats with commas; none of these values holds one);
    a value that is not valid Unicode (a lone surrogate) is a ``400`` too.

    A Wafer client that got no user info sends the literal strings ``undefined`` or ``null``
    in those two headers: they count as absent too (a code-only login), with a warning in
    the log naming the client bug.
    """
    if not config.wafer_compat:
        return None
    code = headers.get(names.wafer_code)
    if code is None:
        return None
    encrypted_data = headers.get(names.wafer_encrypted_data) or None
    iv = headers.get(names.wafer_iv) or None
    if encrypted_data in _UNSET or iv in _UNSET:
        logger.warning(
            "Wafer login: the client sent 'undefined' or 'null' as X-WX-Encrypted-Data/X-WX-IV"
            " (a bug of Wafer clients without user info: they should send neither header);"
            " logging in with the code only"
        )
        encrypted_data = None if encrypted_data in _UNSET else encrypted_data
        iv = None if iv in _UNSET else iv
    for name, value in (
        (WAFER_CODE_HEADER, code),
        (WAFER_ENCRYPTED_DATA_HEADER, encrypted_data),
        (WAFER_IV_HEADER, iv),
    ):
        if value is not None:
            if "," in value:
                raise BadRequest(f"The {name} header is given more than once.")
            # Before the code is spent: undecodable user info must not cost the login.
            check_text(value, f"The {name} header")
    code = check_code(code)
    if (encrypted_data is None) != (iv is None):
        raise BadRequest(
            f"Send {WAFER_ENCRYPTED_DATA_HEADER} and {WAFER_IV_HEADER} together, or neither."
        )
    if len(encrypted_data or "") + len(iv or "") > config.max_body_bytes:
        raise BadRequest(f"The encrypted user info is larger than {config.max_body_bytes} bytes.")
    return WaferLogin(code, encrypted_data, iv)


def wafer_userinfo(login: WaferLogin, session: WxSession, config: WxConfig) -> Dict[str, Any]:
    """The ``userinfo`` of the answer to a Wafer login, never holding the session_key.

    With encrypted data, it is the user info that data decrypts to under this session's
    session_key, after its watermark proved it was made for our appid; the watermark itself
    is dropped (it is the server's check, and the client's own ``wx.getUserInfo`` result has
    none). Either way ``openId``, and ``unionId`` when known, come from the session: WeChat
    no longer puts them in the encrypted user info, and Wafer clients read
    ``userinfo.openId``. A payload that does not decrypt raises the matching
    :class:`~wxmiddleware.crypto.DecryptError` (``400``, with WeChat's -4100x errcode).
    """
    userinfo: Dict[str, Any] = {}
    if login.encrypted_data is not None and login.iv is not None:
        try:
            userinfo = decrypt_data(session, login.encrypted_data, login.iv, config.appid)
        except ImportError:  # decrypt_data imports cryptography, an optional dependency
            raise WxError(
                "The server cannot decrypt user info.",
                detail="decrypting X-WX-Encrypted-Data needs: pip install 'wxmiddleware[crypto]'",
            ) from None
        userinfo.pop("watermark", None)
    userinfo["openId"] = session.openid
    if session.unionid is not None:
        userinfo["unionId"] = session.unionid
    return userinfo


def wafer_error(
    config: WxConfig, kind: RequestKind, error: WxError, headers: HeaderMap, names: HeaderNames
) -> bool:
    """Whether the answer to ``error`` carries Wafer's ``"code": -1``.

    The Wafer client reads ``code: -1`` on a login as a failure, and on any other request as
    "this session is invalid": it drops its skey, logs in again and retries once, whatever
    the HTTP status (wafer2-client-sdk, lib/request.js). So every error of a Wafer login
    (``X-WX-Code``) gets it, and a request that carried ``X-WX-Skey`` gets it only with a
    ``401``: a ``503`` from a store that is down must not make the client throw away a session
    that is still good. Requests without these headers keep our answers unchanged.
    """
    if not config.wafer_compat:
        return False
    if kind is RequestKind.LOGIN:
        return headers.get(names.wafer_code) is not None
    return error.status == 401 and headers.get(names.wafer_skey) is not None


def wafer_login_response(
    token: str, userinfo: Mapping[str, Any], extra: Optional[Mapping[str, Any]] = None
) -> Response:
    """``200 {"code": 0, "data": {"skey": TOKEN, "userinfo": {...}}}``, Wafer's login answer.

    The Wafer client keeps ``data`` and sends ``data.skey`` back in ``X-WX-Skey``; it refuses
    an answer without a ``userinfo``. Fields from ``on_login`` go into ``data``.
    """
    data: Dict[str, Any] = {"skey": token, "userinfo": dict(userinfo)}
    if extra:
        for name, value in extra.items():
            data.setdefault(name, value)
    return json_response(200, {"code": 0, "data": data})
