"""WeChat's server-API security mode (服务端API安全鉴权), without I/O: sealed calls, verified
answers.

With "API安全" switched on in the mini-program's admin console (开发 - 开发管理 - 开发设置 -
API安全), a call's parameters travel encrypted and signed, and WeChat's answer comes back
encrypted and signed by its platform certificate. Source: WeChat's "服务端 API 签名加密指南"
(developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/getting_started/api_signature.html, now
also at developers.weixin.qq.com/miniprogram/dev/server/getting_started/api_signature.html),
whose worked example (getuserriskrank) is this package's test vectors
(tests/wechat/test_api_security.py). What it says, and what this module does:

- **Request body** (3.1): the plaintext is a JSON object of the call's query and body
  parameters (never the access token) plus ``_n`` (a random base64 string of 16-32 bytes),
  ``_appid`` and ``_timestamp`` (Unix seconds, the ``Wechatmp-TimeStamp`` header's value);
  it is encrypted with AES-256-GCM under the symmetric key (API对称密钥), a 12-byte random IV,
  and the associated data ``urlpath|appid|timestamp|sn`` (``urlpath``: the URL with its
  scheme, without the query; ``sn``: the symmetric key's number). What is sent is
  ``{"iv", "data", "authtag"}``, each base64.
- **Request signature** (3.2): RSA-PSS with SHA-256 and a 32-byte salt by the app's private
  key (API非对称密钥) over ``urlpath\\nappid\\ntimestamp\\npostdata`` (``postdata``: the
  bytes of the body as sent), base64 in ``Wechatmp-Signature``, with ``Wechatmp-Appid`` and
  ``Wechatmp-TimeStamp``. ``Wechatmp-Serial`` carries the app key's number as WxJava sends it
  (binarywang/WxJava ``BaseWxMaServiceImpl.postWithSignature``; issue #3915 shows that the
  number belongs in that header and not in the string to sign, which its PR #3780 had
  broken with 40234).
- **Answer** (4.1, 4.2): the same headers, signed over ``urlpath\\nappid\\ntimestamp\\nrespdata``
  by the platform certificate whose number (from the admin console, not the certificate's
  serial) is ``Wechatmp-Serial``; while WeChat rotates its certificate, the one about to
  expire signs too (``Wechatmp-Serial-Deprecated``, ``Wechatmp-Signature-Deprecated``). The
  body is encrypted as the request's, the associated data carrying the answer's timestamp.
- **Errors** (五、错误码): 40230 to 40240, :data:`SECURITY_ERRCODES`.

Every check of an answer fails closed: an answer whose signature does not verify against a
configured certificate, whose timestamp is more than :data:`ANSWER_WINDOW_SECONDS` away, whose
appid is not ours, or that does not decrypt, raises :class:`ApiSecurityError` (``502``) and is
never used. An answer without any signature is only ever read as a failure (WeChat refuses a
call it cannot check in plain JSON): a plain answer that does not name an errcode is refused.

Keys never appear in a ``repr``, a log line or an error message; the key numbers (sn) are not
secret and are named to help an operator find the mismatched one. ``cryptography`` does the
cryptography (``pip install "wxmiddleware[crypto]"``), imported when a configuration uses it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Sequence, Tuple

from ..errors import ConfigError, UpstreamError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = [
    "ANSWER_WINDOW_SECONDS",
    "ApiSecurity",
    "ApiSecurityError",
    "SECURITY_ERRCODES",
    "Sealed",
    "decrypt",
    "encrypt",
    "load_api_security",
    "security_refusal",
    "sign",
    "string_to_sign",
    "verify",
]

#: How far (seconds) an answer's ``Wechatmp-TimeStamp`` may be from this server's clock. The
#: guide names no window; its sample code and WeChat's own community answers refuse answers
#: older than 300 s, which bounds the replay of a captured answer.
ANSWER_WINDOW_SECONDS = 300
#: The salt length of our RSA-PSS signatures, as the guide asks ("需要指定salt长度为32").
SIGNATURE_SALT_BYTES = 32
#: The ``_n`` nonce: 16 random bytes, 22 characters of unpadded base64 (the guide's example).
NONCE_BYTES = 16

HEADER_APPID = "Wechatmp-Appid"
HEADER_TIMESTAMP = "Wechatmp-TimeStamp"
HEADER_SIGNATURE = "Wechatmp-Signature"
HEADER_SERIAL = "Wechatmp-Serial"
HEADER_SERIAL_DEPRECATED = "Wechatmp-Serial-Deprecated"
HEADER_SIGNATURE_DEPRECATED = "Wechatmp-Signature-Deprecated"
#: The answer headers a sealed call asks its transport for (lower case).
ANSWER_HEADERS: Tuple[str, ...] = tuple(
    name.lower()
    for name in (
        HEADER_APPID,
        HEADER_TIMESTAMP,
        HEADER_SIGNATURE,
        HEADER_SERIAL,
        HEADER_SERIAL_DEPRECATED,
        HEADER_SIGNATURE_DEPRECATED,
    )
)

#: WeChat's errcodes of the security mode (the guide's 五、错误码): name and what to check.
SECURITY_ERRCODES: Dict[int, Tuple[str, str]] = {
    40230: (
        "API_Missing_Wechatmp_Serial",
        "the request carried no Wechatmp-Serial: is API security configured here (WX_API_*)"
        " as in the admin console?",
    ),
    40231: (
        "API_Missing_Wechatmp_Timestamp",
        "the request carried no Wechatmp-TimeStamp: is API security configured here"
        " (WX_API_*) as in the admin console?",
    ),
    40232: (
        "API_Missing_Wechatmp_Signature",
        "the request was not signed: API security is on in the admin console; configure"
        " WX_API_SYM_KEY, WX_API_APP_KEY and the platform certificate",
    ),
    40233: (
        "API_Missing_Wechatmp_Appid",
        "the request carried no Wechatmp-Appid: is API security configured here (WX_API_*)"
        " as in the admin console?",
    ),
    40234: (
        "API_Invalid_Signature",
        "WeChat could not verify the request's signature: check that WX_API_APP_KEY is the"
        " private key whose public key the admin console holds (and WX_API_APP_SN its number)",
    ),
    40235: (
        "API_Invalid_Encrypt",
        "WeChat could not decrypt the request: check WX_API_SYM_KEY and WX_API_SYM_SN against"
        " the admin console's API对称密钥",
    ),
    40236: ("API_Invalid_Wechatmp_Appid", "Wechatmp-Appid is not a valid appid"),
    40237: (
        "API_Invalid_Wechatmp_Appidmatch",
        "Wechatmp-Appid does not match the access token's app",
    ),
    40238: (
        "API_NoExist_DevSecretSym",
        "the admin console has no symmetric key (API对称密钥) for this app",
    ),
    40239: (
        "API_NoExist_DevSecretAsym",
        "the admin console has no app public key (API非对称密钥) for this app",
    ),
    40240: (
        "API_Expired_Wechatmp_Timestamp",
        "WeChat found the request's timestamp too old: check this server's clock",
    ),
}


class ApiSecurityError(UpstreamError):
    """WeChat's API security failed: WeChat refused our sealed call (errcodes 40230-40240)
    or its answer failed a check (signature, certificate number, timestamp, appid,
    decryption). A ``502``; ``detail`` names the cause for the log, never a key."""

    default_message = "WeChat's API security check failed."


def security_refusal(errcode: int) -> ApiSecurityError:
    """The error for WeChat's security errcode ``errcode`` (a key of
    :data:`SECURITY_ERRCODES`): a ``502`` whose detail names the errcode and the cause."""
    name, cause = SECURITY_ERRCODES[errcode]
    return ApiSecurityError(
        f"WeChat refused the call's API security (errcode {errcode}).",
        errcode=errcode,
        detail=f"errcode {errcode} {name}: {cause}",
    )


def _answer_failure(cause: str) -> ApiSecurityError:
    return ApiSecurityError("WeChat's answer failed the API security check.", detail=cause)


# --- the primitives, shared with the fake WeChat (wxmiddleware.testing._security) ---


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise _answer_failure(f"the answer's {what} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _answer_failure(f"the answer's {what} is not base64") from None


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
    envelope = {"iv": _b64(iv), "data": _b64(sealed[:-16]), "authtag": _b64(sealed[-16:])}
    return json.dumps(envelope, separators=(",", ":")).encode("ascii")


def decrypt(key: bytes, sym_sn: str, url: str, appid: str, timestamp: int, body: bytes) -> bytes:
    """The plaintext of a sealed body (the inverse of :func:`encrypt`, guide 4.2).

    Raises :class:`ApiSecurityError` for a body that is not ``{"iv", "data", "authtag"}``
    base64, or that does not decrypt under ``key`` with that associated data (a wrong key or
    key number, a tampered body, another URL, appid or timestamp).
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        envelope = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _answer_failure("the answer's body is not JSON") from None
    if not isinstance(envelope, dict):
        raise _answer_failure("the answer's body is not a JSON object")
    iv = _unb64(envelope.get("iv"), "iv")
    data = _unb64(envelope.get("data"), "data")
    tag = _unb64(envelope.get("authtag"), "authtag")
    if len(iv) != 12 or len(tag) != 16:
        raise _answer_failure("the answer's iv or authtag has the wrong length")
    try:
        return AESGCM(key).decrypt(iv, data + tag, _aad(url, appid, timestamp, sym_sn))
    except InvalidTag:
        raise _answer_failure(
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
    return _b64(key.sign(message, pss, hashes.SHA256()))


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


# --- the app's keys ---


@dataclass(frozen=True)
class Sealed:
    """A sealed call, ready to send: its body and headers, and what opening the answer
    needs (``url``, ``appid``). Shows neither body nor headers in a ``repr``."""

    url: str
    appid: str
    timestamp: int
    content: bytes = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True)
class ApiSecurity:
    """One app's API security keys, loaded and checked (:func:`load_api_security`).

    ``sym_key``: the 32-byte AES-256-GCM key (API对称密钥), ``sym_sn`` its number;
    ``app_key``: the app's RSA private key (API非对称密钥), ``app_sn`` its number;
    ``platform_keys``: each platform certificate's number (平台证书编号, not the serial inside
    the certificate) and its RSA public key. A ``repr`` shows the numbers only.
    """

    sym_key: bytes = field(repr=False)
    sym_sn: str
    app_key: RSAPrivateKey = field(repr=False)
    app_sn: str
    platform_keys: Mapping[str, RSAPublicKey] = field(repr=False)

    @property
    def platform_sns(self) -> Tuple[str, ...]:
        """The numbers of the configured platform certificates."""
        return tuple(self.platform_keys)

    def seal(
        self,
        url: str,
        appid: str,
        fields: Mapping[str, Any],
        now: Optional[float] = None,
        *,
        nonce: Optional[str] = None,
        iv: Optional[bytes] = None,
    ) -> Sealed:
        """Seal a call to ``url`` (scheme, host and path; no query) of the app ``appid``
        whose parameters are ``fields`` (its query and body, not the access token).

        ``now`` (Unix seconds; the clock by default), ``nonce`` and ``iv`` are the call's
        own (a fresh random ``_n`` and 12-byte IV by default); the test vectors pass the
        guide's. The plaintext puts ``_n``, ``_appid``, ``_timestamp`` first, as the
        guide's example does.
        """
        timestamp = int(time.time() if now is None else now)
        if nonce is None:
            nonce = _b64(secrets.token_bytes(NONCE_BYTES)).rstrip("=")
        plain = {"_n": nonce, "_appid": appid, "_timestamp": timestamp, **fields}
        plaintext = json.dumps(plain, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        content = encrypt(
            self.sym_key,
            self.sym_sn,
            url,
            appid,
            timestamp,
            plaintext,
            secrets.token_bytes(12) if iv is None else iv,
        )
        headers = {
            "Content-Type": "application/json",
            HEADER_APPID: appid,
            HEADER_TIMESTAMP: str(timestamp),
            HEADER_SERIAL: self.app_sn,
            HEADER_SIGNATURE: sign(self.app_key, string_to_sign(url, appid, timestamp, content)),
        }
        return Sealed(url, appid, timestamp, content, headers)

    def open(
        self, sealed: Sealed, body: bytes, headers: Mapping[str, str], now: Optional[float] = None
    ) -> bytes:
        """The plaintext JSON of WeChat's signed answer to ``sealed`` (``headers`` keyed in
        lower case), without its ``_n``, ``_appid`` and ``_timestamp``.

        Checks, in turn, failing with :class:`ApiSecurityError`: ``Wechatmp-Appid`` is ours;
        ``Wechatmp-TimeStamp`` is within :data:`ANSWER_WINDOW_SECONDS` of ``now``; the
        signature of a configured certificate, ``Wechatmp-Serial``'s or, during a rotation,
        ``Wechatmp-Serial-Deprecated``'s, verifies; the body decrypts; its ``_appid`` and
        ``_timestamp`` repeat the headers'.
        """
        appid, url = sealed.appid, sealed.url
        if headers.get("wechatmp-appid") != appid:
            raise _answer_failure("the answer's Wechatmp-Appid is not this app's appid")
        try:
            timestamp = int(headers.get("wechatmp-timestamp", ""))
        except ValueError:
            raise _answer_failure(
                "the answer's Wechatmp-TimeStamp is missing or not a number"
            ) from None
        clock = time.time() if now is None else now
        if abs(clock - timestamp) > ANSWER_WINDOW_SECONDS:
            raise _answer_failure(
                f"the answer's Wechatmp-TimeStamp is {int(clock - timestamp)} s away from this"
                f" server's clock (more than {ANSWER_WINDOW_SECONDS} s): a replayed answer or a"
                " wrong clock"
            )
        message = string_to_sign(url, appid, timestamp, body)
        offered = [
            (headers.get(serial, ""), headers.get(signature, ""))
            for serial, signature in (
                ("wechatmp-serial", "wechatmp-signature"),
                ("wechatmp-serial-deprecated", "wechatmp-signature-deprecated"),
            )
        ]
        known = [(sn, sig) for sn, sig in offered if sn and sn in self.platform_keys]
        if not known:
            named = ", ".join(sn for sn, _ in offered if sn) or "none"
            raise _answer_failure(
                f"the answer is signed by platform certificate(s) {named}; configured:"
                f" {', '.join(self.platform_sns)} (WX_API_PLATFORM_SN): download the current"
                " platform certificate from the admin console"
            )
        sn, signature = known[0]
        if not verify(self.platform_keys[sn], message, signature):
            raise _answer_failure(
                f"the answer's signature does not verify with platform certificate {sn}:"
                " a tampered answer, or a certificate file that is not that number's"
            )
        plaintext = decrypt(self.sym_key, self.sym_sn, url, appid, timestamp, body)
        try:
            data = json.loads(plaintext.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _answer_failure("the decrypted answer is not JSON") from None
        if not isinstance(data, dict):
            raise _answer_failure("the decrypted answer is not a JSON object")
        if data.pop("_appid", None) != appid or data.pop("_timestamp", None) != timestamp:
            raise _answer_failure("the decrypted answer's _appid or _timestamp does not match")
        data.pop("_n", None)
        return json.dumps(data, ensure_ascii=False).encode("utf-8")


def answer_is_signed(headers: Mapping[str, str]) -> bool:
    """Whether an answer carries a signature (``headers`` keyed in lower case)."""
    return bool(headers.get("wechatmp-signature") or headers.get("wechatmp-signature-deprecated"))


# --- loading the configuration ---


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
