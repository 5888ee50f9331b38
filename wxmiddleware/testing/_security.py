"""WeChat's side of its server-API security, for the fake WeChat: check sealed calls, seal
answers.

:class:`FakeApiSecurity` holds what WeChat holds once API security is configured in the admin
console (the symmetric key, the app's public key, its own platform certificates and their
private keys) and what the developer downloads (the symmetric key, the app's private key,
the platform certificates), made up for a test: :meth:`FakeApiSecurity.generate` creates
them, :meth:`FakeApiSecurity.config_options` and :meth:`FakeApiSecurity.write_files` hand
the developer's half to a :class:`~wxmiddleware.WxConfig` or to ``WX_API_*`` variables, and
:meth:`~wxmiddleware.testing.FakeWeChat.enable_api_security` makes the fake require it.

It follows WeChat's guide (developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/
getting_started/api_signature.html) with the primitives of
:mod:`wxmiddleware.wechat._security` (AES-256-GCM, RSA-PSS with SHA-256); that both sides
share them cannot hide a misreading of the guide, because the package's tests check those
primitives against the guide's worked example. Needs ``cryptography``.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from ..wechat._paths import (
    CHECK_ENCRYPTED_MSG_PATH,
    PHONE_NUMBER_PATH,
    PLUGIN_OPENPID_PATH,
    USER_ENCRYPT_KEY_PATH,
)
from ..wechat._security import (
    ANSWER_WINDOW_SECONDS,
    HEADER_APPID,
    HEADER_SERIAL,
    HEADER_SERIAL_DEPRECATED,
    HEADER_SIGNATURE,
    HEADER_SIGNATURE_DEPRECATED,
    HEADER_TIMESTAMP,
    ApiSecurityError,
    decrypt,
    encrypt,
    sign,
    string_to_sign,
    verify,
)
from ._replies import WeChatError, json_bytes
from ._requests import RecordedCall

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = ["SEALED_PATHS", "FakeApiSecurity", "PlatformCertificate"]

#: The paths the fake serves whose calls API security covers (once it is enabled, these
#: answer only sealed calls).
SEALED_PATHS = frozenset(
    (PHONE_NUMBER_PATH, USER_ENCRYPT_KEY_PATH, CHECK_ENCRYPTED_MSG_PATH, PLUGIN_OPENPID_PATH)
)


def _new_key() -> RSAPrivateKey:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _sn() -> str:
    # The admin console's key and certificate numbers are 32 hex digits.
    return secrets.token_hex(16)


@dataclass(frozen=True)
class PlatformCertificate:
    """One of WeChat's platform certificates: its number (sn), the PEM certificate the
    developer downloads, and the private key WeChat signs with (the fake's own)."""

    sn: str
    pem: str
    key: RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls, appid: str) -> PlatformCertificate:
        """A new self-signed RSA-2048 certificate, valid one year, named after ``appid``."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509.oid import NameOID

        key = _new_key()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, appid),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wxmiddleware fake WeChat"),
            ]
        )
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256())
        )
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
        return cls(_sn(), pem, key)


class FakeApiSecurity:
    """The API security of one app, as the fake WeChat plays it (see the module docstring).

    ``appid`` is the app's; ``sym_key`` (base64 of 32 bytes) and ``sym_sn`` the symmetric
    key; ``app_key`` the app's RSA private key (the developer's, kept here to hand to the
    configuration) and ``app_sn`` its number; ``certificates`` WeChat's platform
    certificates, the current one first and, during a rotation (:meth:`rotate`), the one
    about to expire second. Keys never appear in a ``repr``.

    The knobs below make the fake misbehave, for tests of a client's checks:
    ``tamper_answers`` flips a byte of every sealed answer after signing it;
    ``answer_clock_offset`` (seconds) shifts the answers' timestamps; ``answer_serial``
    names another certificate number in ``Wechatmp-Serial``.
    """

    def __init__(
        self,
        appid: str,
        sym_key: str,
        sym_sn: str,
        app_key: RSAPrivateKey,
        app_sn: str,
        certificates: List[PlatformCertificate],
    ) -> None:
        self.appid = appid
        self.sym_key = sym_key
        self.sym_sn = sym_sn
        self.app_key = app_key
        self.app_sn = app_sn
        self.certificates = list(certificates)
        self.tamper_answers = False
        self.answer_clock_offset = 0.0
        self.answer_serial: Optional[str] = None

    def __repr__(self) -> str:
        sns = ", ".join(certificate.sn for certificate in self.certificates)
        return f"<FakeApiSecurity appid={self.appid!r} sym_sn={self.sym_sn} platform={sns}>"

    @classmethod
    def generate(cls, appid: str) -> FakeApiSecurity:
        """New keys and a new platform certificate for the app ``appid``."""
        return cls(
            appid,
            base64.b64encode(secrets.token_bytes(32)).decode("ascii"),
            _sn(),
            _new_key(),
            _sn(),
            [PlatformCertificate.generate(appid)],
        )

    def rotate(self) -> PlatformCertificate:
        """Start a certificate rotation: a new current certificate, the old one kept as the
        deprecated one (answers carry both signatures); returns the new one."""
        fresh = PlatformCertificate.generate(self.appid)
        self.certificates = [fresh, self.certificates[0]]
        return fresh

    def end_rotation(self) -> None:
        """End a rotation: answers are signed by the current certificate only."""
        del self.certificates[1:]

    @property
    def app_key_pem(self) -> str:
        """The app's private key as the admin console lets one download it: PEM, PKCS#8."""
        from cryptography.hazmat.primitives import serialization

        return self.app_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    def config_options(self) -> Dict[str, Any]:
        """The ``api_*`` options of :class:`~wxmiddleware.WxConfig` for this app (keys as
        PEM text, every certificate of a rotation)."""
        return {
            "api_sym_key": self.sym_key,
            "api_sym_sn": self.sym_sn,
            "api_app_key": self.app_key_pem,
            "api_app_sn": self.app_sn,
            "api_platform_cert": tuple(c.pem for c in self.certificates),
            "api_platform_sn": tuple(c.sn for c in self.certificates),
        }

    def write_files(self, directory: str) -> Dict[str, str]:
        """Write the app key and the platform certificates as PEM files into
        ``directory``; return the ``WX_API_*`` environment variables that name them."""
        key_path = os.path.join(directory, "api_app_key.pem")
        with open(key_path, "w", encoding="ascii") as handle:
            handle.write(self.app_key_pem)
        cert_paths = []
        for certificate in self.certificates:
            path = os.path.join(directory, f"platform_{certificate.sn}.pem")
            with open(path, "w", encoding="ascii") as handle:
                handle.write(certificate.pem)
            cert_paths.append(path)
        return {
            "WX_API_SYM_KEY": self.sym_key,
            "WX_API_SYM_SN": self.sym_sn,
            "WX_API_APP_KEY": key_path,
            "WX_API_APP_SN": self.app_sn,
            "WX_API_PLATFORM_CERT": ",".join(cert_paths),
            "WX_API_PLATFORM_SN": ",".join(c.sn for c in self.certificates),
        }

    # -- WeChat's side ----------------------------------------------------------------------

    @property
    def _key(self) -> bytes:
        return base64.b64decode(self.sym_key)

    @property
    def _app_public_key(self) -> RSAPublicKey:
        return self.app_key.public_key()

    def open_call(self, call: RecordedCall, url: str) -> RecordedCall:
        """Check a sealed call to ``url`` as WeChat does and return it unsealed: its fields
        in the query (beside the access token) and in the body.

        Raises :class:`~wxmiddleware.testing._replies.WeChatError` with the guide's
        errcodes: 40233 no ``Wechatmp-Appid``, 40237 another app's; 40231 no
        ``Wechatmp-TimeStamp``, 40240 one more than five minutes away; 40232 no
        ``Wechatmp-Signature``, 40234 one that the app's public key does not verify; 40235 a
        body that does not decrypt, or whose ``_appid``/``_timestamp`` differ.
        """
        headers = call.headers
        appid = headers.get("wechatmp-appid")
        if not appid:
            raise WeChatError(40233, "API_Missing_Wechatmp_Appid")
        if appid != self.appid:
            raise WeChatError(40237, "API_Invalid_Wechatmp_Appidmatch")
        try:
            timestamp = int(headers.get("wechatmp-timestamp", ""))
        except ValueError:
            raise WeChatError(40231, "API_Missing_Wechatmp_Timestamp") from None
        if abs(time.time() - timestamp) > ANSWER_WINDOW_SECONDS:
            raise WeChatError(40240, "API_Expired_Wechatmp_Timestamp")
        signature = headers.get("wechatmp-signature")
        if not signature:
            raise WeChatError(40232, "API_Missing_Wechatmp_Signature")
        message = string_to_sign(url, appid, timestamp, call.body)
        if not verify(self._app_public_key, message, signature):
            raise WeChatError(40234, "invalid signature")
        try:
            plaintext = decrypt(self._key, self.sym_sn, url, appid, timestamp, call.body)
            fields = json.loads(plaintext.decode("utf-8"))
        except (ApiSecurityError, UnicodeDecodeError, ValueError):
            raise WeChatError(40235, "API_Invalid_Encrypt") from None
        if (
            not isinstance(fields, dict)
            or fields.pop("_appid", None) != appid
            or fields.pop("_timestamp", None) != timestamp
            or not isinstance(fields.pop("_n", None), str)
        ):
            raise WeChatError(40235, "API_Invalid_Encrypt")
        query = [(name, value) for name, value in call.query if name == "access_token"]
        query += [(name, str(value)) for name, value in fields.items()]
        return RecordedCall(call.method, call.path, query, call.raw_query, json_bytes(fields))

    def seal_answer(self, url: str, answer: bytes) -> Tuple[bytes, Tuple[Tuple[str, str], ...]]:
        """The sealed body of the JSON ``answer`` to a call to ``url``, and the headers that
        sign it (``Wechatmp-Serial-Deprecated`` too during a rotation), under the knobs."""
        timestamp = int(time.time() + self.answer_clock_offset)
        plain = {"_n": secrets.token_urlsafe(16), "_appid": self.appid, "_timestamp": timestamp}
        plain.update(json.loads(answer))
        body = encrypt(
            self._key,
            self.sym_sn,
            url,
            self.appid,
            timestamp,
            json_bytes(plain),
            secrets.token_bytes(12),
        )
        message = string_to_sign(url, self.appid, timestamp, body)
        current = self.certificates[0]
        headers = [
            (HEADER_APPID, self.appid),
            (HEADER_TIMESTAMP, str(timestamp)),
            (HEADER_SERIAL, self.answer_serial or current.sn),
            (HEADER_SIGNATURE, sign(current.key, message)),
        ]
        for deprecated in self.certificates[1:]:
            headers.append((HEADER_SERIAL_DEPRECATED, deprecated.sn))
            headers.append((HEADER_SIGNATURE_DEPRECATED, sign(deprecated.key, message)))
        if self.tamper_answers:
            envelope = json.loads(body)
            data = bytearray(base64.b64decode(envelope["data"]))
            data[0] ^= 1
            envelope["data"] = base64.b64encode(bytes(data)).decode("ascii")
            body = json_bytes(envelope)
        return body, tuple(headers)

    def serve(
        self, call: RecordedCall, url: str, answer: Callable[[RecordedCall], bytes]
    ) -> Tuple[bytes, Tuple[Tuple[str, str], ...]]:
        """WeChat's answer to a sealed ``call`` to ``url``: unsealed, answered by
        ``answer`` and sealed back; a call that fails a check gets its plain, unsigned
        ``{"errcode", "errmsg"}``."""
        try:
            plain = self.open_call(call, url)
        except WeChatError as refusal:
            return json_bytes({"errcode": refusal.errcode, "errmsg": refusal.errmsg}), ()
        return self.seal_answer(url, answer(plain))
