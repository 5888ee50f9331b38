"""The other mini-program platforms' login APIs, as the fake serves them: QQ, Douyin, Baidu,
Kuaishou and Alipay, each in its own answer format with its own error codes.

:class:`FakePlatforms` is pure state and answers (no sockets); :class:`FakeWeChat
<wxmiddleware.testing.FakeWeChat>` holds one as ``fake.platforms`` and serves each platform
under a path prefix of its own URL (``/qq``, ``/douyin``, ``/baidu``, ``/kuaishou``,
``/alipay``), so that :func:`api_bases` points a configuration at it::

    fake.platforms.add_app("douyin", "tt0123456789abcdef", "tt-secret")
    config = WxConfig(apps=["douyin:tt0123456789abcdef:tt-secret"], **api_bases(fake.url))
    code = fake.platforms.issue_code("tt0123456789abcdef", "alice")

Endpoints (the paths the providers of :mod:`wxmiddleware.core._providers` call):

- QQ ``GET /qq/sns/jscode2session`` (``appid``, ``secret``, ``js_code``, ``grant_type``):
  ``{"openid", "session_key", "unionid"}`` or ``{"errcode", "errmsg"}``: 40013 unknown
  appid, 40125 wrong secret, 40029 a code that is unknown, expired, used or another app's,
  45011 more than 100 logins of a user in a minute.
- Douyin ``POST /douyin/api/apps/v2/jscode2session`` (JSON ``appid``, ``secret``, ``code``,
  ``anonymous_code``): ``{"err_no": 0, "err_tips": "success", "data": {…}}`` or a non-zero
  ``err_no``: 40014 no code, 40015 appid, 40017 secret, 40018 code, 40019 anonymous_code.
- Baidu ``POST /baidu/oauth/jscode2sessionkey`` (form ``code``, ``client_id``, ``sk``):
  ``{"openid", "session_key"}`` or ``{"error", "error_description"}``: ``invalid_client``
  (unknown App Key or wrong secret), ``invalid_grant`` (the code).
- Kuaishou ``POST /kuaishou/oauth2/mp/code2session`` (form ``app_id``, ``app_secret``,
  ``js_code``): ``{"result": 1, "session_key", "open_id"}`` or ``{"result", "error_msg"}``:
  100 a parameter missing, 240002 app_id or app_secret, 240001 the code.
- Alipay ``POST /alipay/gateway.do`` (common parameters in the query, ``grant_type`` and
  ``code`` in the form): checks the RSA2 signature with the app's public key, answers
  ``alipay_system_oauth_token_response`` (``user_id``, ``open_id``, ``access_token`` …)
  signed with the fake Alipay's private key, or ``error_response``: 40002
  ``isv.invalid-app-id``, ``isv.invalid-signature``, ``isv.code-invalid``; 40001
  ``isv.missing-…`` for a missing parameter.

Faults (:meth:`FakePlatforms.inject`) replace the next answers of one platform. Every
method may be called from any thread; times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qsl

from .._apps import PLATFORM_INFO
from ._codes import LoginCodes
from ._replies import JSON, Reply, WeChatError, json_bytes
from ._requests import RecordedCall, json_object

__all__ = ["PLATFORM_PATHS", "FakePlatforms", "api_base_env", "api_bases"]

#: The exchange path each platform's provider calls, below the platform's prefix.
PLATFORM_PATHS: Dict[str, Tuple[str, str]] = {
    "qq": ("GET", "/sns/jscode2session"),
    "douyin": ("POST", "/api/apps/v2/jscode2session"),
    "baidu": ("POST", "/oauth/jscode2sessionkey"),
    "kuaishou": ("POST", "/oauth2/mp/code2session"),
    "alipay": ("POST", "/gateway.do"),
}

#: Faults :meth:`FakePlatforms.inject` takes.
FAULTS = ("error", "html", "http_status", "invalid_json", "wrong_shape", "close")


def api_bases(url: str) -> Dict[str, str]:
    """The ``WxConfig`` fields that point every other platform at the fake at ``url``
    (``{"api_base_qq": url + "/qq", …}``)."""
    return {f"api_base_{name}": f"{url}/{name}" for name in PLATFORM_PATHS}


def api_base_env(url: str) -> Dict[str, str]:
    """The environment variables that do what :func:`api_bases` does
    (``{"WX_API_BASE_QQ": url + "/qq", …}``)."""
    return {PLATFORM_INFO[name].api_base_variable: f"{url}/{name}" for name in PLATFORM_PATHS}


def _derived(prefix: str, material: str, length: int = 27) -> str:
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    return prefix + base64.urlsafe_b64encode(digest).decode("ascii")[:length]


@dataclass
class _App:
    platform: str
    secret: str
    #: Alipay: the app's public key (base64 DER), which checks its requests' signatures.
    public_key: str = ""


@dataclass(frozen=True)
class _Fault:
    kind: str
    params: Mapping[str, Any]


class _Refusal(Exception):
    """A platform's refusal; ``body`` is its answer (HTTP 200)."""

    def __init__(self, body: bytes) -> None:
        super().__init__("refused")
        self.body = body


class FakePlatforms:
    """QQ's, Douyin's, Baidu's, Kuaishou's and Alipay's login APIs (see the module docstring).

    ``session_key_factory`` makes each login's session key (``() -> str``); ``unionid``
    says whether answers carry a unionid (a user's is the same in every app of a
    platform). Codes are issued per app (:meth:`issue_code`) and work only there: a code of
    one app sent to another answers that platform's invalid-code error.
    """

    RATE_LIMIT = 100
    """QQ's logins per user within :attr:`RATE_WINDOW` seconds (errcode 45011)."""
    RATE_WINDOW = 60.0
    CODE_TTL = 300.0

    def __init__(self, session_key_factory: Callable[[], str], unionid: bool = True) -> None:
        self._new_key = session_key_factory
        self.unionid = unionid
        self._lock = threading.Lock()
        self._apps: Dict[str, _App] = {}
        self._codes = LoginCodes()
        self._anonymous = LoginCodes()
        self._session_keys: Dict[Tuple[str, str], str] = {}
        self._faults: Dict[str, Deque[_Fault]] = {}
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
            private_key, public_key = _key_pair()
            if not self._alipay_private:
                self._alipay_private, self.alipay_public_key = _key_pair()
        with self._lock:
            self._apps[appid] = _App(platform, secret, public_key)
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
        return _derived("o", f"{appid}:{user}")

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
        return _derived("u", f"{platform}:{user}") if self.unionid else None

    def anonymous_openid_for(self, user: str, appid: str) -> str:
        """Douyin's ``anonymous_openid`` of ``user`` in the app ``appid``."""
        return _derived("a", f"{appid}:{user}")

    def session_key_for(self, user: str, appid: str) -> Optional[str]:
        """The session key the platform last issued ``user`` in ``appid`` (``None`` before
        a login there, and always for Alipay, which has none)."""
        with self._lock:
            return self._session_keys.get((appid, self.openid_for(user, appid)))

    # -- faults, call log ------------------------------------------------------------------

    def inject(self, platform: str, fault: str, count: int = 1, **params: Any) -> None:
        """Queue ``count`` copies of a fault for ``platform``'s next exchanges (the code is
        not spent): ``"error"`` (``code``: the platform's error code or word, Alipay's
        ``sub_code``; optional ``message``) answers that refusal in the platform's format;
        ``"html"`` an HTML page (HTTP 200); ``"http_status"`` (``status=502``) that status
        with an HTML page; ``"invalid_json"``; ``"wrong_shape"`` JSON of another shape
        (``[]``); ``"close"`` drops the connection. ``ValueError`` for an unknown one."""
        if platform not in PLATFORM_PATHS or fault not in FAULTS or count < 1:
            raise ValueError(f"unknown platform or fault: {platform!r}, {fault!r}")
        if fault == "error" and "code" not in params:
            raise ValueError("an error fault needs its code")
        with self._lock:
            queue = self._faults.setdefault(platform, collections.deque())
            queue.extend([_Fault(fault, dict(params))] * count)

    def calls_to(self, platform: str) -> int:
        """How many exchange requests reached ``platform``."""
        with self._lock:
            return sum(call.path.startswith(f"/{platform}/") for call in self._calls)

    @property
    def calls(self) -> List[RecordedCall]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._calls)

    def reset(self) -> None:
        """Forget queued faults, the call log and rate counters."""
        with self._lock:
            self._faults.clear()
            self._calls.clear()
            self._codes.forget_quotas()

    # -- answering -------------------------------------------------------------------------

    @staticmethod
    def serves(path: str) -> bool:
        """Whether ``path`` is under a platform's prefix (the server hands it here)."""
        return path.split("/", 2)[1] in PLATFORM_PATHS if path.count("/") >= 2 else False

    def answer(self, call: RecordedCall, now: float) -> Optional[Reply]:
        """The answer to ``call`` at ``now``; ``None`` drops the connection."""
        platform = call.path.split("/", 2)[1]
        method, path = PLATFORM_PATHS[platform]
        with self._lock:
            self._calls.append(call)
            queue = self._faults.get(platform)
            fault = queue.popleft() if queue else None
        if call.path != f"/{platform}{path}":
            return Reply(404, "text/html", b"<html><body>404 Not Found</body></html>")
        if call.method != method:
            return Reply(405, "text/html", b"<html><body>405 Not Allowed</body></html>")
        if fault is not None:
            return self._fault_reply(platform, fault)
        try:
            body = getattr(self, f"_{platform}")(call, now)
        except _Refusal as refusal:
            body = refusal.body
        return Reply(200, "application/json; charset=utf-8", body)

    def _fault_reply(self, platform: str, fault: _Fault) -> Optional[Reply]:
        if fault.kind == "close":
            return None
        if fault.kind == "error":
            code = fault.params["code"]
            return Reply(200, JSON, self._error_body(platform, code, fault.params.get("message")))
        if fault.kind == "invalid_json":
            return Reply(200, JSON, b'{"openid": "o')
        if fault.kind == "wrong_shape":
            return Reply(200, JSON, b"[]")
        status = int(fault.params.get("status", 502)) if fault.kind == "http_status" else 200
        page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
        return Reply(status, "text/html", page)

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

    def _refuse(self, platform: str, code: Any, message: str = "") -> _Refusal:
        return _Refusal(self._error_body(platform, code, message))

    def _app(self, platform: str, appid: Optional[str]) -> Optional[_App]:
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

    def _qq(self, call: RecordedCall, now: float) -> bytes:
        query = dict(call.query)
        app = self._app("qq", query.get("appid"))
        if app is None:
            raise self._refuse("qq", 40013, "invalid appid")
        if query.get("secret") != app.secret:
            raise self._refuse("qq", 40125, "invalid appsecret")
        if query.get("grant_type") != "authorization_code":
            raise self._refuse("qq", 40002, "invalid grant_type")
        appid = query["appid"]
        return json_bytes(
            self._user(self._log_in("qq", appid, query.get("js_code"), now, 40029), appid)
        )

    def _douyin(self, call: RecordedCall, now: float) -> bytes:
        body = json_object(call.body) or {}
        appid = body.get("appid")
        app = self._app("douyin", appid if isinstance(appid, str) else None)
        if app is None:
            raise self._refuse("douyin", 40015, "bad appid")
        if body.get("secret") != app.secret:
            raise self._refuse("douyin", 40017, "bad secret")
        code, anonymous = body.get("code"), body.get("anonymous_code")
        if not code and not anonymous:
            raise self._refuse("douyin", 40014, "bad params")
        assert isinstance(appid, str)
        data: Dict[str, str] = {"anonymous_openid": "", "unionid": ""}
        if anonymous:
            with self._lock:
                try:
                    anonymous_user = self._anonymous.claim(
                        anonymous, now, 1 << 30, self.RATE_WINDOW, appid
                    )
                except WeChatError:
                    raise self._refuse("douyin", 40019, "bad anonymous_code") from None
            data["anonymous_openid"] = self.anonymous_openid_for(anonymous_user, appid)
        if code:
            data.update(self._user(self._log_in("douyin", appid, code, now, 40018), appid))
        return json_bytes({"err_no": 0, "err_tips": "success", "data": data})

    def _baidu(self, call: RecordedCall, now: float) -> bytes:
        form = dict(parse_qsl(call.body.decode("utf-8", "replace")))
        app = self._app("baidu", form.get("client_id"))
        if app is None or form.get("sk") != app.secret:
            raise self._refuse("baidu", "invalid_client", "unknown client id")
        appid = form["client_id"]
        user = self._log_in("baidu", appid, form.get("code"), now, "invalid_grant")
        found = self._user(user, appid)
        return json_bytes({"openid": found["openid"], "session_key": found["session_key"]})

    def _kuaishou(self, call: RecordedCall, now: float) -> bytes:
        form = dict(parse_qsl(call.body.decode("utf-8", "replace")))
        if not all(form.get(name) for name in ("app_id", "app_secret", "js_code")):
            raise self._refuse("kuaishou", 100, "参数不完整")
        app = self._app("kuaishou", form.get("app_id"))
        if app is None or form.get("app_secret") != app.secret:
            raise self._refuse("kuaishou", 240002, "app_secret非法")
        appid = form["app_id"]
        found = self._user(self._log_in("kuaishou", appid, form["js_code"], now, 240001), appid)
        answer: Dict[str, Any] = {
            "result": 1,
            "session_key": found["session_key"],
            "open_id": found["openid"],
        }
        if "unionid" in found:
            answer["union_id"] = found["unionid"]
        return json_bytes(answer)

    def _alipay(self, call: RecordedCall, now: float) -> bytes:
        from .._alipay_keys import verify
        from ..core._providers_alipay import ALIPAY_ANSWER, ALIPAY_METHOD, alipay_signed_content

        params = dict(call.query)
        params.update(parse_qsl(call.body.decode("utf-8", "replace")))
        for name in ("app_id", "method", "sign", "sign_type", "timestamp", "version", "code"):
            if not params.get(name):
                raise self._refuse("alipay", f"isv.missing-{name.replace('_', '-')}", "missing")
        app = self._app("alipay", params["app_id"])
        if app is None:
            raise self._refuse("alipay", "isv.invalid-app-id", "无效的AppID参数")
        signed = alipay_signed_content(params)
        if params["sign_type"] != "RSA2" or not verify(app.public_key, signed, params["sign"]):
            raise self._refuse("alipay", "isv.invalid-signature", "验签出错")
        if params["method"] != ALIPAY_METHOD or params.get("grant_type") != "authorization_code":
            raise self._refuse("alipay", "isv.invalid-parameter", "参数无效")
        appid = params["app_id"]
        user = self._log_in("alipay", appid, params["code"], now, "isv.code-invalid")
        answer = {
            "user_id": self.unionid_for(user, appid),
            "open_id": self.openid_for(user, appid),
            "access_token": "authusrB" + secrets.token_hex(16),
            "expires_in": 1296000,
            "refresh_token": "authusrB" + secrets.token_hex(16),
            "re_expires_in": 2592000,
            "auth_start": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        return self._alipay_signed(ALIPAY_ANSWER, answer)

    def _alipay_signed(self, member: str, value: Mapping[str, Any]) -> bytes:
        """``{member: value, "sign": …}`` signed as Alipay signs: over ``value``'s text."""
        from .._alipay_keys import sign

        raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if not self._alipay_private:
            return f'{{"{member}":{raw}}}'.encode()
        signature = sign(self._alipay_private, raw.encode("utf-8"))
        return f'{{"{member}":{raw},"sign":"{signature}"}}'.encode()


def _key_pair() -> Tuple[str, str]:
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
