"""The state of the other platforms' fake (:mod:`.platforms`): its apps, users, codes and
session keys, the ids it derives for a user, and each platform's refusal in that platform's
format.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Tuple

from ._codes import LoginCodes
from ._replies import WeChatError, json_bytes
from ._requests import RecordedCall

#: The exchange path each platform's provider calls, below the platform's prefix.
PLATFORM_PATHS: Dict[str, Tuple[str, str]] = {
    "qq": ("GET", "/sns/jscode2session"),
    "douyin": ("POST", "/api/apps/v2/jscode2session"),
    "baidu": ("POST", "/oauth/jscode2sessionkey"),
    "kuaishou": ("POST", "/oauth2/mp/code2session"),
    "alipay": ("POST", "/gateway.do"),
}


def derived(prefix: str, material: str, length: int = 27) -> str:
    """A stable id: ``prefix`` and ``length`` characters of ``material``'s hash."""
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    return prefix + base64.urlsafe_b64encode(digest).decode("ascii")[:length]


@dataclass
class App:
    """An app the fake serves: its platform, its secret and (Alipay) its public key."""

    platform: str
    secret: str
    #: Alipay: the app's public key (base64 DER), which checks its requests' signatures.
    public_key: str = ""


@dataclass(frozen=True)
class PlatformFault:
    """A fault queued for a platform's next exchange (:meth:`~.platforms.FakePlatforms.inject`)."""

    kind: str
    params: Mapping[str, Any]


class Refusal(Exception):
    """A platform's refusal; ``body`` is its answer (HTTP 200)."""

    def __init__(self, body: bytes) -> None:
        super().__init__("refused")
        self.body = body


def key_pair() -> Tuple[str, str]:
    """A fresh 2048-bit RSA key pair as Alipay's key tool writes it: the private key as
    base64 PKCS#8 DER, the public key as base64 SubjectPublicKeyInfo DER."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(private).decode("ascii"), base64.b64encode(public).decode("ascii")


class PlatformState:
    """The apps, users, codes and session keys of :class:`~.platforms.FakePlatforms` (see
    its docstring), and the refusals its exchanges answer in each platform's format."""

    RATE_LIMIT = 100
    """QQ's logins per user within :attr:`RATE_WINDOW` seconds (errcode 45011)."""
    RATE_WINDOW = 60.0
    CODE_TTL = 300.0

    def __init__(self, session_key_factory: Callable[[], str], unionid: bool = True) -> None:
        self._new_key = session_key_factory
        self.unionid = unionid
        self._lock = threading.Lock()
        self._apps: Dict[str, App] = {}
        self._codes = LoginCodes()
        self._anonymous = LoginCodes()
        self._session_keys: Dict[Tuple[str, str], str] = {}
        self._faults: Dict[str, Deque[PlatformFault]] = {}
        self._calls: List[RecordedCall] = []
        self._alipay_private = ""
        self.alipay_public_key = ""
        """Alipay's public key (base64 DER) to configure; set by the first Alipay app."""

    # -- apps, users, codes ----------------------------------------------------------------

    def add_app(self, platform: str, appid: str, secret: str = "") -> Optional[str]:
        """Serve the app ``appid`` of ``platform`` with ``secret``. For Alipay, ``secret``
        is ignored: the fake makes the app's RSA key pair and returns its private key
        (base64 DER, as Alipay's key tool writes it; configure it with
        :attr:`alipay_public_key`); for the others it returns ``None``."""
        if platform not in PLATFORM_PATHS:
            raise ValueError(f"the fake serves no platform {platform!r}")
        private_key = None
        public_key = ""
        if platform == "alipay":
            private_key, public_key = key_pair()
            if not self._alipay_private:
                self._alipay_private, self.alipay_public_key = key_pair()
        with self._lock:
            self._apps[appid] = App(platform, secret, public_key)
        return private_key

    def issue_code(self, appid: str, user: str = "alice", *, ttl: Optional[float] = None) -> str:
        """A fresh single-use code for ``user`` of the app ``appid``, as its platform's
        login call gives, valid ``ttl`` seconds (default :attr:`CODE_TTL`)."""
        with self._lock:
            return self._codes.issue(user, time.monotonic(), ttl or self.CODE_TTL, appid)

    def issue_anonymous_code(self, appid: str, user: str = "alice") -> str:
        """A fresh single-use ``anonymous_code`` of Douyin's ``tt.login()`` for ``user``."""
        with self._lock:
            return self._anonymous.issue(user, time.monotonic(), self.CODE_TTL, appid)

    def openid_for(self, user: str, appid: str) -> str:
        """The user id the platform of ``appid`` reports for ``user`` in that app (Alipay:
        its ``open_id``)."""
        return derived("o", f"{appid}:{user}")

    def unionid_for(self, user: str, appid: str) -> Optional[str]:
        """The unionid of ``user`` on the platform of ``appid`` (Alipay: the ``user_id``,
        the same user across apps), or ``None`` with ``unionid=False`` (not for Alipay) and
        on Baidu, whose exchange answers none."""
        with self._lock:
            platform = self._apps[appid].platform
        if platform == "baidu":
            return None
        if platform == "alipay":
            return "2088" + str(int(hashlib.sha256(user.encode()).hexdigest(), 16))[:12]
        return derived("u", f"{platform}:{user}") if self.unionid else None

    def anonymous_openid_for(self, user: str, appid: str) -> str:
        """Douyin's ``anonymous_openid`` of ``user`` in the app ``appid``."""
        return derived("a", f"{appid}:{user}")

    def session_key_for(self, user: str, appid: str) -> Optional[str]:
        """The session key the platform last issued ``user`` in ``appid`` (``None`` before
        a login there, and always for Alipay, which has none)."""
        with self._lock:
            return self._session_keys.get((appid, self.openid_for(user, appid)))

    def _app(self, platform: str, appid: Optional[str]) -> Optional[App]:
        with self._lock:
            app = self._apps.get(appid or "")
        return app if app is not None and app.platform == platform else None

    def _log_in(
        self, platform: str, appid: str, code: Optional[str], now: float, invalid: Any
    ) -> str:
        """Spend ``code`` of ``appid``: its user, or the platform's refusal (``invalid`` for
        a code that is unknown, expired, used or another app's; QQ's 45011 over its quota).
        A new session key is issued for the user, except on Alipay."""
        limit = self.RATE_LIMIT if platform == "qq" else 1 << 30
        with self._lock:
            try:
                user = self._codes.claim(code, now, limit, self.RATE_WINDOW, appid)
            except WeChatError as error:
                refusal = 45011 if error.errcode == 45011 else invalid
                raise self._refuse(platform, refusal, "invalid code") from None
            if platform != "alipay":
                self._session_keys[(appid, self.openid_for(user, appid))] = self._new_key()
        return user

    def _user(self, user: str, appid: str) -> Dict[str, str]:
        """The openid, session key and (when on) unionid of a login."""
        openid = self.openid_for(user, appid)
        with self._lock:
            found = {"openid": openid, "session_key": self._session_keys[(appid, openid)]}
        unionid = self.unionid_for(user, appid)
        if unionid is not None:
            found["unionid"] = unionid
        return found

    def _refuse(self, platform: str, code: Any, message: str = "") -> Refusal:
        return Refusal(self._error_body(platform, code, message))

    def _error_body(self, platform: str, code: Any, message: Optional[str] = None) -> bytes:
        """A refusal with ``code`` in ``platform``'s format."""
        text = message or "error"
        if platform == "qq":
            return json_bytes({"errcode": code, "errmsg": text})
        if platform == "douyin":
            return json_bytes({"err_no": code, "err_tips": text, "data": {}})
        if platform == "baidu":
            return json_bytes({"error": code, "error_description": text})
        if platform == "kuaishou":
            return json_bytes({"result": code, "error_msg": text})
        main = "20000" if str(code).startswith(("isp.", "aop.")) else "40002"
        failure = {"code": main, "msg": "Invalid Arguments", "sub_code": code, "sub_msg": text}
        return self._alipay_signed("error_response", failure)

    def _alipay_signed(self, member: str, value: Mapping[str, Any]) -> bytes:
        """``{member: value, "sign": …}`` signed as Alipay signs: over ``value``'s text."""
        from .._alipay_keys import sign

        raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if not self._alipay_private:
            return f'{{"{member}":{raw}}}'.encode()
        signature = sign(self._alipay_private, raw.encode("utf-8"))
        return f'{{"{member}":{raw},"sign":"{signature}"}}'.encode()
