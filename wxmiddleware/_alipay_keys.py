"""Alipay's RSA2 keys: the app's private key signs each gateway request, Alipay's public key
checks each answer's signature (``SHA256WithRSA``, PKCS#1 v1.5, base64).

Keys are accepted as Alipay's key tool writes them (the bare base64 of the DER, on one
line: PKCS#8 or PKCS#1 for the private key, SubjectPublicKeyInfo for the public key) or
as PEM. Uses the ``cryptography`` package (a dependency of this one), imported on first
use; each key text is parsed once. Errors never repeat a key.
Source: Alipay's signing rules ("自行实现签名", as mirrored at
juejin.cn/post/6844903816484110349; "签名与验签", docs.open.alipay.com, mirrored at
kancloud.cn/s2981295/qing/932556): RSA2 is SHA256WithRSA over the request's parameters
but ``sign``, sorted by name and joined as ``key=value`` with ``&``.
"""

from __future__ import annotations

import base64
import binascii
import functools
from typing import Any

from .errors import ConfigError

__all__ = ["check_keys", "sign", "verify"]


def _pem(text: str, kind: str) -> bytes:
    """``text`` as PEM: unchanged when it is PEM, else the base64 wrapped as ``kind``."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        return stripped.encode("ascii")
    body = "".join(stripped.split())
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n").encode(
        "ascii"
    )


@functools.lru_cache(maxsize=64)
def _private_key(text: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    for kind in ("PRIVATE KEY", "RSA PRIVATE KEY"):  # PKCS#8, then PKCS#1
        try:
            key = load_pem_private_key(_pem(text, kind), password=None)
        except (ValueError, TypeError, UnicodeEncodeError):
            continue
        if isinstance(key, rsa.RSAPrivateKey):
            return key
    raise ValueError("not an RSA private key")


@functools.lru_cache(maxsize=64)
def _public_key(text: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(_pem(text, "PUBLIC KEY"))
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ValueError("not an RSA public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def check_keys(appid: str, private_key: str, public_key: str) -> None:
    """Raise :class:`ConfigError` (naming the app and the key, never the key's text)
    unless ``private_key`` is an RSA private key and ``public_key`` an RSA public key of at
    least 2048 bits (RSA2's minimum)."""
    if not public_key:
        raise ConfigError(
            f"the Alipay app {appid} needs Alipay's public key (WX_ALIPAY_PUBLIC_KEY, or the"
            " fourth field of its WX_APPS entry) to check Alipay's answers"
        )
    for what, loader, text in (
        ("private key", _private_key, private_key),
        ("Alipay public key", _public_key, public_key),
    ):
        try:
            key = loader(text)
        except ValueError:
            raise ConfigError(
                f"the {what} of the Alipay app {appid} is not an RSA key in base64 or PEM"
            ) from None
        if key.key_size < 2048:
            raise ConfigError(f"the {what} of the Alipay app {appid} is shorter than 2048 bits")


def sign(private_key: str, message: bytes) -> str:
    """The base64 ``SHA256WithRSA`` signature of ``message`` under ``private_key`` (a key
    :func:`check_keys` accepted)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signature = _private_key(private_key).sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify(public_key: str, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is a ``SHA256WithRSA`` signature of ``message`` by
    the holder of ``public_key``'s private key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        raw = base64.b64decode(signature, validate=True)
        _public_key(public_key).verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
