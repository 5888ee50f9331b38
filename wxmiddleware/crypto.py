"""Mini-program open data: decrypt ``encryptedData`` and check ``rawData`` signatures.

``encryptedData`` is AES-128-CBC with PKCS#7 padding, keyed by the session's ``session_key``
(base64) with the ``iv`` (base64) sent alongside; its JSON carries ``watermark.appid``, which
must be our appid. ``signature`` is ``sha1(rawData + session_key)``. Decryption uses the
``cryptography`` package, a dependency of this one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any, ClassVar, Dict, Optional, Type, Union

from . import _json as bounded_json
from .errors import WxError
from .session import WxSession

__all__ = [
    "DecryptError",
    "IllegalAesKey",
    "IllegalBuffer",
    "IllegalIv",
    "InvalidBase64",
    "WatermarkMismatch",
    "decrypt_data",
    "session_signature",
    "verify_signature",
]

SessionOrKey = Union[WxSession, str]


class DecryptError(WxError):
    """``encryptedData`` could not be turned into the user's data."""

    status = 400
    error = "decrypt_failed"
    default_message = "The encrypted data could not be decrypted."
    #: The errcode WeChat's own decryption samples use for this failure.
    wechat_errcode: ClassVar[int] = -41003

    def __init__(self, message: Optional[str] = None) -> None:
        super().__init__(message, errcode=self.wechat_errcode)


class IllegalAesKey(DecryptError):
    """-41001: the session_key is not a 16-byte base64 key."""

    default_message = "The session key is not a valid AES key; log in again."
    wechat_errcode = -41001


class IllegalIv(DecryptError):
    """-41002: the iv is not 16 bytes of base64."""

    default_message = "The iv is not a valid 16-byte base64 value."
    wechat_errcode = -41002


class IllegalBuffer(DecryptError):
    """-41003: the data does not decrypt to JSON (wrong key, wrong iv, or tampered)."""

    default_message = "The encrypted data does not decrypt with this session's key."


class WatermarkMismatch(IllegalBuffer):
    """-41003: the data decrypted, but its watermark names another appid."""

    default_message = "The encrypted data belongs to another mini-program."


class InvalidBase64(DecryptError):
    """-41004: the encrypted data is not base64."""

    default_message = "The encrypted data is not valid base64."
    wechat_errcode = -41004


def _key_of(session: SessionOrKey) -> str:
    return session.session_key if isinstance(session, WxSession) else session


def _b64(value: str, error: Type[DecryptError]) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError, AttributeError):
        raise error() from None


def decrypt_data(session: SessionOrKey, encrypted_data: str, iv: str, appid: str) -> Dict[str, Any]:
    """Decrypt ``encryptedData`` from the mini-program and check its watermark.

    ``session`` is a :class:`~wxmiddleware.WxSession` or its base64 ``session_key``;
    ``encrypted_data`` and ``iv`` are the base64 strings ``wx.getUserInfo`` (and the other
    open-data APIs) give the mini-program; ``appid`` is ours. Returns the decrypted JSON
    object, ``watermark`` included. Every failure is one of these :class:`DecryptError`
    (``400``): :class:`IllegalAesKey` (-41001), :class:`IllegalIv` (-41002),
    :class:`IllegalBuffer` (-41003: wrong key or iv, tampered, not a JSON object, nested
    too deeply, or holding text that is not valid Unicode) or :class:`WatermarkMismatch`
    (-41003), :class:`InvalidBase64` (-41004). Messages never contain the key or the data.
    """
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.padding import PKCS7

    key = _b64(_key_of(session), IllegalAesKey)
    if len(key) != 16:
        raise IllegalAesKey()
    iv_bytes = _b64(iv, IllegalIv)
    if len(iv_bytes) != 16:
        raise IllegalIv()
    data = _b64(encrypted_data, InvalidBase64)
    if not data or len(data) % 16:
        raise IllegalBuffer()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv_bytes)).decryptor()
    unpadder = PKCS7(128).unpadder()
    try:
        padded = decryptor.update(data) + decryptor.finalize()
        plain = unpadder.update(padded) + unpadder.finalize()
        payload = bounded_json.loads(plain.decode("utf-8"))
        # JSON's "\ud800" escapes make lone surrogates, which fail wherever the payload is
        # next encoded (an answer, a log line, a database): refused here, as bad data.
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    # Bad padding, bad UTF-8, bad JSON, nesting past bounded_json.MAX_DEPTH and a lone
    # surrogate all derive from ValueError.
    except ValueError:
        raise IllegalBuffer() from None
    if not isinstance(payload, dict):
        raise IllegalBuffer()
    watermark = payload.get("watermark")
    if not isinstance(watermark, dict) or watermark.get("appid") != appid:
        raise WatermarkMismatch()
    return payload


def verify_signature(session: SessionOrKey, raw_data: str, signature: str) -> bool:
    """Whether ``signature == sha1(rawData + session_key)``, compared in constant time."""
    expected = hashlib.sha1(  # noqa: S324 (WeChat's signature scheme, not our choice)
        (raw_data + _key_of(session)).encode("utf-8")
    ).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def session_signature(session: SessionOrKey) -> str:
    """The ``signature`` checksession wants: ``hmac_sha256(key=session_key, msg="")``, hex."""
    return hmac.new(_key_of(session).encode("utf-8"), b"", hashlib.sha256).hexdigest()
