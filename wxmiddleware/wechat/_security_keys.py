"""Loading the keys of WeChat's server-API security (:mod:`._security`) from a configuration's
``api_*`` fields: the symmetric key, the app's RSA private key and the platform
certificates, as text or files, checked once; a :class:`~wxmiddleware.errors.ConfigError`
names the setting, never its value.
"""

from __future__ import annotations

import base64
import binascii
import functools
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

from ..errors import ConfigError
from ._security import ApiSecurity

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey


def _read_pem(value: str, what: str) -> bytes:
    """PEM text as given, or the contents of the file it names."""
    if "-----BEGIN" in value:
        return value.encode("ascii", "replace")
    try:
        with open(value, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise ConfigError(f"{what}: cannot read {value!r} ({type(error).__name__})") from None


def _private_key(value: str) -> RSAPrivateKey:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    pem = _read_pem(value, "WX_API_APP_KEY (api_app_key)")
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):  # never the key's text in the message
        raise ConfigError(
            "WX_API_APP_KEY (api_app_key) is not an unencrypted PEM private key (PKCS#1"
            " 'BEGIN RSA PRIVATE KEY' or PKCS#8 'BEGIN PRIVATE KEY')"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(
            "WX_API_APP_KEY (api_app_key) is not an RSA key: this package signs with"
            " RSAwithSHA256 only (choose it, not SM2withSM3, in the admin console)"
        )
    return key


def _certificate_key(value: str, sn: str) -> RSAPublicKey:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    what = f"WX_API_PLATFORM_CERT (api_platform_cert) of number {sn}"
    try:
        certificate = x509.load_pem_x509_certificate(_read_pem(value, what))
    except ValueError:
        raise ConfigError(f"{what} is not a PEM certificate") from None
    key = certificate.public_key()
    if not isinstance(key, RSAPublicKey):
        raise ConfigError(f"{what} does not hold an RSA public key")
    return key


def _sym_key(value: str) -> bytes:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            "WX_API_SYM_KEY (api_sym_key) is not base64: paste the admin console's"
            " API对称密钥 as it shows it"
        ) from None
    if len(key) != 32:
        raise ConfigError(
            f"WX_API_SYM_KEY (api_sym_key) decodes to {len(key)} bytes, not the 32 of an"
            " AES256_GCM key (SM4_GCM is not supported)"
        )
    return key


def load_api_security(
    sym_key: str,
    sym_sn: str,
    app_key: str,
    app_sn: str,
    platform_certs: Sequence[str],
    platform_sns: Sequence[str],
) -> Optional[ApiSecurity]:
    """The API security keys of a configuration (:class:`~wxmiddleware.WxConfig`'s
    ``api_*`` fields), loaded once (cached on the arguments); ``None`` when none is set.

    ``sym_key`` is base64 of 32 bytes; ``app_key`` an RSA private key, PEM (PKCS#1 or
    PKCS#8, unencrypted) or the path of a PEM file; ``platform_certs`` PEM certificates or
    their paths, paired in order with ``platform_sns``. Raises
    :class:`~wxmiddleware.errors.ConfigError` naming the setting (never its value) for
    anything missing or malformed, and when ``cryptography`` is not installed.
    """
    return _load(sym_key, sym_sn, app_key, app_sn, tuple(platform_certs), tuple(platform_sns))


@functools.lru_cache(maxsize=32)
def _load(
    sym_key: str,
    sym_sn: str,
    app_key: str,
    app_sn: str,
    platform_certs: Tuple[str, ...],
    platform_sns: Tuple[str, ...],
) -> Optional[ApiSecurity]:
    given = {
        "WX_API_SYM_KEY (api_sym_key)": sym_key,
        "WX_API_SYM_SN (api_sym_sn)": sym_sn,
        "WX_API_APP_KEY (api_app_key)": app_key,
        "WX_API_APP_SN (api_app_sn)": app_sn,
        "WX_API_PLATFORM_CERT (api_platform_cert)": ",".join(platform_certs),
        "WX_API_PLATFORM_SN (api_platform_sn)": ",".join(platform_sns),
    }
    missing = [name for name, value in given.items() if not value.strip()]
    if len(missing) == len(given):
        return None
    if missing:
        raise ConfigError("API security needs all of its settings; missing: " + ", ".join(missing))
    if len(platform_certs) != len(platform_sns):
        raise ConfigError(
            f"WX_API_PLATFORM_CERT names {len(platform_certs)} certificate(s) and"
            f" WX_API_PLATFORM_SN {len(platform_sns)} number(s): give one number per"
            " certificate, in the same order"
        )
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise ConfigError(
            'API security needs the cryptography package: pip install "wxmiddleware[crypto]"'
        ) from None
    return ApiSecurity(
        sym_key=_sym_key(sym_key),
        sym_sn=sym_sn.strip(),
        app_key=_private_key(app_key),
        app_sn=app_sn.strip(),
        platform_keys={
            sn.strip(): _certificate_key(cert, sn.strip())
            for cert, sn in zip(platform_certs, platform_sns)
        },
    )
