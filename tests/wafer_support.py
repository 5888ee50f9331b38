"""What a Wafer client sends, for the tests: user info encrypted as WeChat encrypts it.

WeChat encrypts ``wx.getUserInfo``'s data under the session_key that jscode2session then
returns for the login's code, so the mini-program sends data it cannot read and the server
decrypts it with the key it has just received. The fake WeChat makes a random session_key per
login and tells nobody in advance, so :func:`pin_session_key` plays WeChat's part: it decides
the key every login of the test gets (through ``FakeWeChat.session_key_factory``), and the test
encrypts the user info under it.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any, Dict, Mapping, Optional, Tuple

import pytest

from wxmiddleware.testing import FakeWeChat

USER_INFO: Dict[str, Any] = {
    "nickName": "Band",
    "gender": 1,
    "language": "zh_CN",
    "city": "Guangzhou",
    "province": "Guangdong",
    "country": "CN",
    "avatarUrl": "https://thirdwx.qlogo.cn/mmopen/vi_32/POgEwh4mIHO4nibH0KlMECNjjGxQUq24Z/132",
}


def pin_session_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make every fake WeChat of the test give every login this (random) session_key."""
    key = base64.b64encode(os.urandom(16)).decode()
    # On the class, so that it reaches fakes that fixtures started before this call.
    monkeypatch.setattr(FakeWeChat, "session_key_factory", staticmethod(lambda: key))
    return key


def encrypt_user_info(session_key: str, payload: Mapping[str, Any]) -> Tuple[str, str]:
    """``(encryptedData, iv)`` as WeChat makes them: AES-128-CBC, PKCS#7, base64."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.padding import PKCS7

    iv = os.urandom(16)
    padder = PKCS7(128).padder()
    plain = padder.update(json.dumps(payload).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(base64.b64decode(session_key)), modes.CBC(iv)).encryptor()
    data = encryptor.update(plain) + encryptor.finalize()
    return base64.b64encode(data).decode(), base64.b64encode(iv).decode()


def user_info_for(session_key: str, appid: str) -> Tuple[str, str]:
    """:data:`USER_INFO` with a watermark for ``appid``, encrypted under ``session_key``."""
    watermark = {"appid": appid, "timestamp": 1700000000}
    return encrypt_user_info(session_key, {**USER_INFO, "watermark": watermark})


def wafer_headers(code: str, encrypted: Optional[Tuple[str, str]] = None) -> Dict[str, str]:
    """The headers of a Wafer login: the code and, when given, the encrypted user info."""
    headers = {"X-WX-Code": code}
    if encrypted is not None:
        headers["X-WX-Encrypted-Data"], headers["X-WX-IV"] = encrypted
    return headers
