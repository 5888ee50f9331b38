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

This module holds the headers, :class:`Sealed` and :class:`ApiSecurity` (sealing a call,
opening its answer); the errors are :mod:`._security_errors`'s, the cryptography
:mod:`._security_crypto`'s, and loading the keys of a configuration
(``load_api_security``) :mod:`._security_keys`'s.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional, Tuple

from ._security_crypto import answer_object, b64, decrypt, encrypt, sign, string_to_sign, verify
from ._security_errors import SECURITY_ERRCODES, ApiSecurityError, answer_failure, security_refusal

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
    "security_refusal",
    "sign",
    "string_to_sign",
    "verify",
]

#: How far (seconds) an answer's ``Wechatmp-TimeStamp`` may be from this server's clock. The
#: guide names no window; its sample code and WeChat's own community answers refuse answers
#: older than 300 s, which bounds the replay of a captured answer.
ANSWER_WINDOW_SECONDS = 300
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
            nonce = b64(secrets.token_bytes(NONCE_BYTES)).rstrip("=")
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
            raise answer_failure("the answer's Wechatmp-Appid is not this app's appid")
        try:
            timestamp = int(headers.get("wechatmp-timestamp", ""))
        except ValueError:
            raise answer_failure(
                "the answer's Wechatmp-TimeStamp is missing or not a number"
            ) from None
        clock = time.time() if now is None else now
        if abs(clock - timestamp) > ANSWER_WINDOW_SECONDS:
            raise answer_failure(
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
            raise answer_failure(
                f"the answer is signed by platform certificate(s) {named}; configured:"
                f" {', '.join(self.platform_sns)} (WX_API_PLATFORM_SN): download the current"
                " platform certificate from the admin console"
            )
        sn, signature = known[0]
        if not verify(self.platform_keys[sn], message, signature):
            raise answer_failure(
                f"the answer's signature does not verify with platform certificate {sn}:"
                " a tampered answer, or a certificate file that is not that number's"
            )
        plaintext = decrypt(self.sym_key, self.sym_sn, url, appid, timestamp, body)
        data = answer_object(plaintext, "the decrypted answer")
        if data.pop("_appid", None) != appid or data.pop("_timestamp", None) != timestamp:
            raise answer_failure("the decrypted answer's _appid or _timestamp does not match")
        data.pop("_n", None)
        return json.dumps(data, ensure_ascii=False).encode("utf-8")


def answer_is_signed(headers: Mapping[str, str]) -> bool:
    """Whether an answer carries a signature (``headers`` keyed in lower case)."""
    return bool(headers.get("wechatmp-signature") or headers.get("wechatmp-signature-deprecated"))
