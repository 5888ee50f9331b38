"""WeChat's user-info server APIs (OpenApiDoc "user-info"): the user's encryption keys
(``getuserencryptkey``), phone numbers (``getuserphonenumber``), encrypted data checks
(``checkencryptedmsg``) and plugin openpids (``getpluginopenpid``), as requests and reply
parsers. API security covers each of them (``ApiRequest.secure``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..errors import BadRequest, UpstreamError
from ..session import WxSession
from ._api_login import signed_by_session
from ._api_replies import parse_reply
from ._paths import (
    CHECK_ENCRYPTED_MSG_PATH,
    PHONE_NUMBER_PATH,
    PLUGIN_OPENPID_PATH,
    USER_ENCRYPT_KEY_PATH,
)
from ._protocol import ApiRequest, reply_errcode, reply_object

#: A phone number code is a few dozen characters; anything far longer is not one.
MAX_PHONE_CODE_LENGTH = 512
#: Phone number ``encryptedData`` is a few hundred base64 characters; this bounds the hash.
MAX_ENCRYPTED_DATA_LENGTH = 64 * 1024


def user_encrypt_keys_request(session: WxSession) -> ApiRequest:
    """``POST /wxa/business/getuserencryptkey?access_token&openid&signature&sig_method``:
    the user's last three encryption keys (those of ``wx.getUserCryptoManager()``).

    Source: developers.weixin.qq.com/minigame/dev/api-backend/open-api/internet/
    internet.getUserEncryptKey.html (the parameters in the query, as its curl example sends
    them; "signature = hmac_sha256(session_key, "")"); the answer is
    ``{"errcode": 0, "errmsg": "ok", "key_info_list": [{"encrypt_key", "version",
    "expire_in", "iv", "create_time"}, …]}``.
    """
    return ApiRequest("POST", USER_ENCRYPT_KEY_PATH, params=signed_by_session(session), secure=True)


@dataclass(frozen=True)
class UserEncryptKey:
    """One of the user's encryption keys (``getuserencryptkey``'s ``key_info_list``).

    ``encrypt_key`` (base64) and ``iv`` are what the mini-program's
    ``UserCryptoManager.getLatestUserKey()`` gives as ``encryptKey`` and ``iv``; ``version``
    tells which key a message used; ``expire_in`` is the seconds it has left (0: expired);
    ``create_time`` is when WeChat made it (Unix seconds). WeChat does not document the
    cipher the mini-program uses with them (it leaves that to the developer), so this
    package ships no decryption for it.
    """

    encrypt_key: str = field(repr=False)
    iv: str = field(repr=False)
    version: int
    expire_in: int
    create_time: int


def parse_user_encrypt_keys(status: int, body: bytes) -> List[UserEncryptKey]:
    """Parse a getuserencryptkey reply: its ``key_info_list``, as WeChat orders it."""
    listed = parse_reply(status, body).get("key_info_list")
    if not isinstance(listed, list):
        raise UpstreamError("WeChat answered without a key_info_list.")
    keys = []
    for item in listed:
        try:
            keys.append(
                UserEncryptKey(
                    encrypt_key=str(item["encrypt_key"]),
                    iv=str(item["iv"]),
                    version=int(item["version"]),
                    expire_in=int(item["expire_in"]),
                    create_time=int(item["create_time"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            raise UpstreamError("WeChat answered a malformed key_info_list.") from None
    return keys


def phone_number_request(phone_code: str) -> ApiRequest:
    """``POST /wxa/business/getuserphonenumber`` for the code of ``getPhoneNumber``.

    Raises :class:`~wxmiddleware.errors.BadRequest` for a code that cannot be one, so a
    malformed request never costs a call to WeChat.
    """
    if not isinstance(phone_code, str) or not phone_code.strip():
        raise BadRequest("The phone number code is missing.")
    if len(phone_code) > MAX_PHONE_CODE_LENGTH:
        raise BadRequest("The phone number code is too long.")
    return ApiRequest("POST", PHONE_NUMBER_PATH, body={"code": phone_code}, secure=True)


def parse_phone_number(status: int, body: bytes) -> Dict[str, Any]:
    """Parse a getuserphonenumber reply: its ``phone_info`` object.

    ``phone_info`` holds ``phoneNumber`` (with the country code for numbers outside
    mainland China), ``purePhoneNumber``, ``countryCode`` and ``watermark``.
    """
    info = parse_reply(status, body).get("phone_info")
    if not isinstance(info, dict) or not isinstance(info.get("phoneNumber"), str):
        raise UpstreamError("WeChat answered without a phone number.")
    return info


def check_encrypted_data_request(encrypted_data: str) -> ApiRequest:
    """``POST /wxa/business/checkencryptedmsg`` ``{"encrypted_msg_hash"}``: did WeChat make
    this ``encryptedData`` (phone number data only, of the last three days)?

    WeChat gets the hex SHA-256 of the base64 text, never the data. Source:
    developers.weixin.qq.com/minigame/dev/api-backend/open-api/user-info/
    auth.checkEncryptedData.html (its example hashes the base64 string as sent). Raises
    :class:`~wxmiddleware.errors.BadRequest` for missing or oversized data.
    """
    if not isinstance(encrypted_data, str) or not encrypted_data.strip():
        raise BadRequest("The encrypted data is missing.")
    if len(encrypted_data) > MAX_ENCRYPTED_DATA_LENGTH:
        raise BadRequest("The encrypted data is too long.")
    digest = hashlib.sha256(encrypted_data.encode("utf-8")).hexdigest()
    return ApiRequest(
        "POST", CHECK_ENCRYPTED_MSG_PATH, body={"encrypted_msg_hash": digest}, secure=True
    )


@dataclass(frozen=True)
class EncryptedDataCheck:
    """checkencryptedmsg's answer: whether WeChat made the data (its ``vaild``, sic) and
    when (``create_time``, Unix seconds; ``None`` when WeChat gives none)."""

    valid: bool
    create_time: Optional[int]


#: checkencryptedmsg's errcode for data it does not know ("加密数据不存在": not made by
#: WeChat, older than three days, or its key gone): a verdict, not a failure.
ENCRYPTED_DATA_UNKNOWN_ERRCODE = 1


def parse_check_encrypted_data(status: int, body: bytes) -> EncryptedDataCheck:
    """Parse a checkencryptedmsg reply: errcode 1 (unknown data) is ``valid=False``.
    WeChat spells the field ``vaild``; ``valid`` is read too, should it ever fix that."""
    data = reply_object(status, body)
    if reply_errcode(data) == ENCRYPTED_DATA_UNKNOWN_ERRCODE:
        return EncryptedDataCheck(False, None)
    data = parse_reply(status, body)
    valid = data.get("vaild", data.get("valid"))
    created = data.get("create_time")
    if not isinstance(valid, bool):
        raise UpstreamError("WeChat answered an encrypted data check without a verdict.")
    if isinstance(created, bool) or not isinstance(created, int):
        created = None
    return EncryptedDataCheck(valid, created)


def plugin_openpid_request(code: str) -> ApiRequest:
    """``POST /wxa/getpluginopenpid`` ``{"code"}``: the plugin user's openpid for the code
    of ``wx.pluginLogin`` (getPluginOpenPId in WeChat's server-API reference). Raises
    :class:`~wxmiddleware.errors.BadRequest` for a code that cannot be one."""
    if not isinstance(code, str) or not code.strip():
        raise BadRequest("The plugin login code is missing.")
    if len(code) > MAX_PHONE_CODE_LENGTH:
        raise BadRequest("The plugin login code is too long.")
    return ApiRequest("POST", PLUGIN_OPENPID_PATH, body={"code": code}, secure=True)


def parse_plugin_openpid(status: int, body: bytes) -> str:
    """Parse a getpluginopenpid reply: the ``openpid``."""
    openpid = parse_reply(status, body).get("openpid")
    if not isinstance(openpid, str) or not openpid:
        raise UpstreamError("WeChat answered without an openpid.")
    return openpid
