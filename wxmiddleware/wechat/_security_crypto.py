"""The cryptography of WeChat's server-API security (:mod:`._security`), shared with the fake
WeChat (:mod:`wxmiddleware.testing._security`): AES-256-GCM sealed bodies (guide 3.1, 4.2),
the string to sign (3.2, 4.1), and RSA-PSS SHA-256 signatures. ``cryptography`` is imported
when a function needs it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any, Dict

from ._security_errors import answer_failure

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

#: The salt length of our RSA-PSS signatures, as the guide asks ("需要指定salt长度为32").
SIGNATURE_SALT_BYTES = 32


def b64(data: bytes) -> str:
    """``data`` as base64 text."""
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise answer_failure(f"the answer's {what} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise answer_failure(f"the answer's {what} is not base64") from None


def answer_object(raw: bytes, what: str) -> Dict[str, Any]:
    """The JSON object ``raw`` holds; :class:`ApiSecurityError` naming ``what`` for bytes
    that are not JSON, or JSON that is not an object."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise answer_failure(f"{what} is not JSON") from None
    if not isinstance(data, dict):
        raise answer_failure(f"{what} is not a JSON object")
    return data


def _aad(url: str, appid: str, timestamp: int, sym_sn: str) -> bytes:
    return f"{url}|{appid}|{timestamp}|{sym_sn}".encode()


def encrypt(
    key: bytes, sym_sn: str, url: str, appid: str, timestamp: int, plaintext: bytes, iv: bytes
) -> bytes:
    """The sealed body ``{"iv", "data", "authtag"}`` (compact JSON bytes, as the guide's
    example sends it) of ``plaintext`` under the 32-byte AES-256-GCM ``key``, the 12-byte
    ``iv`` and the associated data ``url|appid|timestamp|sym_sn`` (guide 3.1)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    sealed = AESGCM(key).encrypt(iv, plaintext, _aad(url, appid, timestamp, sym_sn))
    envelope = {"iv": b64(iv), "data": b64(sealed[:-16]), "authtag": b64(sealed[-16:])}
    return json.dumps(envelope, separators=(",", ":")).encode("ascii")


def decrypt(key: bytes, sym_sn: str, url: str, appid: str, timestamp: int, body: bytes) -> bytes:
    """The plaintext of a sealed body (the inverse of :func:`encrypt`, guide 4.2).

    Raises :class:`ApiSecurityError` for a body that is not ``{"iv", "data", "authtag"}``
    base64, or that does not decrypt under ``key`` with that associated data (a wrong key or
    key number, a tampered body, another URL, appid or timestamp).
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    envelope = answer_object(body, "the answer's body")
    iv = _unb64(envelope.get("iv"), "iv")
    data = _unb64(envelope.get("data"), "data")
    tag = _unb64(envelope.get("authtag"), "authtag")
    if len(iv) != 12 or len(tag) != 16:
        raise answer_failure("the answer's iv or authtag has the wrong length")
    try:
        return AESGCM(key).decrypt(iv, data + tag, _aad(url, appid, timestamp, sym_sn))
    except InvalidTag:
        raise answer_failure(
            f"the answer did not decrypt with symmetric key sn {sym_sn} (WX_API_SYM_KEY):"
            " a wrong key or a tampered answer"
        ) from None


def string_to_sign(url: str, appid: str, timestamp: int, body: bytes) -> bytes:
    """``urlpath\\nappid\\ntimestamp\\nbody``, no newline after the body (guide 3.2, 4.1)."""
    return f"{url}\n{appid}\n{timestamp}\n".encode() + body


def sign(key: RSAPrivateKey, message: bytes) -> str:
    """The base64 RSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) signature of ``message``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=SIGNATURE_SALT_BYTES)
    return b64(key.sign(message, pss, hashes.SHA256()))


def verify(key: RSAPublicKey, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is an RSA-PSS SHA-256 signature of ``message`` by
    ``key``, whatever its salt length (the guide: "一般不需要指定salt长度")."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    try:
        key.verify(raw, message, pss, hashes.SHA256())
    except InvalidSignature:
        return False
    return True
