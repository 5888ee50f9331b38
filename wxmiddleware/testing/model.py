"""How WeChat answers: the fake's behaviour and state, with no sockets and no threads.

:class:`WeChatModel` takes one request (method, path, query pairs, body) and a time, and
answers ``(status, content type, body)`` as WeChat's API does, keeping the state that takes:
issued and used login codes, each user's minute quota, access tokens, phone codes, the
session_key each user last got, queued faults and the calls received. :class:`FakeWeChat
<wxmiddleware.testing.FakeWeChat>` serves it over HTTP; a test may also drive it directly::

    model = WeChatModel()
    code = model.issue_code("alice")
    call = RecordedCall.of("GET", f"/sns/jscode2session?appid=…&js_code={code}&…")
    reply = model.reply(model.receive(call), now=time.monotonic())
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import secrets
import threading
import time
from typing import Any, Callable, Deque, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from ..wechat._paths import (
    CHECK_ENCRYPTED_MSG_PATH,
    CHECK_SESSION_PATH,
    COMPONENT_JSCODE2SESSION_PATH,
    JSCODE2SESSION_PATH,
    PHONE_NUMBER_PATH,
    PLUGIN_OPENPID_PATH,
    RESET_SESSION_KEY_PATH,
    STABLE_TOKEN_PATH,
    TOKEN_PATH,
)
from ._access_tokens import AccessTokens
from ._codes import LoginCodes, PhoneCodes
from ._replies import JSON, Reply, WeChatError, error_body, json_bytes
from ._requests import API_ROUTES, Arrival, RecordedCall, json_object, single_values
from ._security import SEALED_PATHS, FakeApiSecurity
from .faults import Fault, fault_reply, make_fault

__all__ = ["API_ROUTES", "Arrival", "RecordedCall", "WeChatModel", "new_session_key"]


def new_session_key() -> str:
    """A session_key as WeChat makes one: 16 random bytes, base64."""
    return base64.b64encode(secrets.token_bytes(16)).decode("ascii")


def _derived_id(prefix: str, material: str) -> str:
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    return prefix + base64.urlsafe_b64encode(digest).decode("ascii")[:27]


class WeChatModel:
    """WeChat's login and server APIs for one app or several, as state and answers.

    The app of ``appid``/``secret`` is the default one; ``apps`` (``{appid: secret}``) and
    :meth:`add_app` add more. Codes are issued for one app (:meth:`issue_code`'s ``appid``)
    and work only with it; a user's openid differs between apps, the unionid does not;
    each app has its own access tokens. :meth:`add_component` adds a third-party
    platform, which logs users of the apps that authorised it in through
    ``/sns/component/jscode2session`` (``appid``, ``js_code``, ``grant_type``,
    ``component_appid``, ``component_access_token``): an unknown or wrong
    ``component_access_token`` answers 40001, a ``component_appid`` other than the
    token's 40013, an app that has not authorised the platform 61003, then the code is
    checked as jscode2session checks it.

    ``jscode2session`` checks, in this order, answering HTTP 200 with ``{"errcode", "errmsg"}``:
    appid (40013), secret (40125), ``grant_type == "authorization_code"`` (40002), the code is
    known and unexpired (40029), the code is unused (40163), the user has made at most 100
    logins in the last 60 s (45011). A parameter sent more than once counts as invalid, so a
    client that builds its query by string concatenation is caught. On success the answer is
    ``{"session_key", "openid", "unionid"}`` with a fresh session_key per login.

    The server APIs check the ``access_token`` in the query first: missing (41001), unknown
    (40001), expired (42001).

    - ``GET /cgi-bin/token`` checks appid (40013), secret (40125) and
      ``grant_type == "client_credential"`` (40002) and issues a new token valid
      :attr:`ACCESS_TOKEN_TTL` seconds; the token it issued before stops working five minutes
      later, as WeChat does.
    - ``POST /cgi-bin/stable_token`` (a JSON body with the same fields and ``force_refresh``;
      anything else is 47001) returns the current stable token, with the seconds it has left,
      until fewer than five minutes remain: then it issues the next one, and the old one
      stays valid until its own expiry. ``force_refresh`` issues a new one at once and ends
      the old one. The two endpoints' tokens are independent, as at WeChat.
    - ``GET /wxa/checksession`` answers 0 when ``signature`` is
      ``hmac_sha256(key=session_key, msg="")`` of the session_key the fake last issued to
      ``openid``, 87009 otherwise (an older session_key, another user's, none);
      ``sig_method`` must be ``hmac_sha256`` (40097).
    - ``GET /wxa/resetusersessionkey`` checks ``openid``/``signature``/``sig_method`` as
      checksession does and issues the user a new session_key (``session_key_factory``),
      answering ``{"errcode": 0, "errmsg": "ok", "openid", "session_key"}``; the old key stops
      working, as after a new login.
    - ``POST /wxa/business/getuserencryptkey`` (the same three query parameters) answers the
      user's last three encryption keys, newest first, as ``key_info_list`` (``encrypt_key``,
      ``iv``, ``version``, ``expire_in``, ``create_time``); a key lives
      :attr:`ENCRYPT_KEY_TTL` seconds and the next call after that makes a new one.
    - ``POST /wxa/business/getuserphonenumber`` takes ``{"code": …}`` from
      :meth:`issue_phone_code` (single-use, five minutes; else 40029) and answers its
      ``phone_info``.
    - ``POST /wxa/business/checkencryptedmsg`` takes ``{"encrypted_msg_hash": …}`` (hex
      SHA-256) and answers ``{"vaild": true, "create_time"}`` (WeChat's spelling) for data
      given to :meth:`remember_encrypted_data`, errcode 1 for any other.
    - ``POST /wxa/getpluginopenpid`` takes ``{"code": …}`` from :meth:`issue_plugin_code`
      (single-use, five minutes; else 40029) and answers its user's ``openpid``.

    :meth:`enable_api_security` switches WeChat's server-API security on: calls to the APIs
    it covers (:data:`~wxmiddleware.testing._security.SEALED_PATHS`) must then be sealed
    (encrypted and signed) and get sealed answers; see
    :class:`~wxmiddleware.testing._security.FakeApiSecurity`.

    A known path called with the wrong method answers 43001 or 43002; an unknown path, HTTP 404
    with errcode 40066. Faults (see :meth:`inject`) replace the whole answer of one request and
    leave the code untouched, except ``"slow"``, which answers normally after its delay.
    ``latency`` (seconds, settable) delays every API answer.

    Times are ``time.monotonic()`` seconds. Every method may be called from any thread.
    """

    CODE_TTL = 300.0
    """Seconds a code from :meth:`issue_code` stays valid, as with ``wx.login()``."""
    RATE_LIMIT = 100
    """Logins per user allowed within :attr:`RATE_WINDOW` seconds."""
    RATE_WINDOW = 60.0
    """Seconds of the sliding window in which :attr:`RATE_LIMIT` applies."""
    DEFAULT_APPID = "wx0123456789abcdef"
    DEFAULT_SECRET = "fake-secret-0123456789"  # noqa: S105 (the fake's own secret)
    ACCESS_TOKEN_TTL = 7200
    """Seconds an access token is valid (the ``expires_in`` of a new one)."""
    ENCRYPT_KEY_TTL = 3600
    """Seconds a user encryption key of ``getuserencryptkey`` lives."""
    TOKEN_OVERLAP = 300.0
    """Seconds a token stays valid after its successor: the old ``/cgi-bin/token`` token
    after a new fetch, and the window in which stable_token hands out the next one."""

    session_key_factory: Callable[[], str] = staticmethod(new_session_key)
    """Makes the session_key of each login: ``() -> str``, base64 of 16 bytes as WeChat's.

    WeChat encrypts a user's data under the session_key that the login then returns, so a test
    that sends encrypted user info must know the key in advance: give a factory to the
    constructor, or set this attribute on one fake or on the class for every fake.
    """

    def __init__(
        self,
        appid: str = DEFAULT_APPID,
        secret: str = DEFAULT_SECRET,
        *,
        unionid: bool = True,
        latency: float = 0.0,
        session_key_factory: Optional[Callable[[], str]] = None,
        apps: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.appid = appid
        self.secret = secret
        # appid -> secret of every app the fake serves ("" for one only a platform logs in)
        self._secrets: Dict[str, str] = {appid: secret, **(apps or {})}
        # component_access_token -> (component_appid, the appids that authorised it)
        self._components: Dict[str, Tuple[str, Set[str]]] = {}
        self.unionid = unionid
        self.latency = latency
        if session_key_factory is not None:
            self.session_key_factory = session_key_factory
        self._initial_latency = latency
        self._lock = threading.Lock()
        self._login_codes = LoginCodes()
        self._phone_codes = PhoneCodes()
        self._access_tokens: Dict[str, AccessTokens] = {}
        # openid -> the session_key of its latest login (what checksession accepts)
        self._session_keys: Dict[str, str] = {}
        # openid -> its encryption keys, oldest first, each with its monotonic birth time
        self._encrypt_keys: Dict[str, List[Dict[str, Any]]] = {}
        self._faults: Dict[str, Deque[Fault]] = {}
        self._calls: List[RecordedCall] = []
        # plugin login code -> (user, monotonic expiry); spent codes are removed
        self._plugin_codes: Dict[str, Tuple[str, float]] = {}
        # hex sha256 of encryptedData WeChat "made" -> its create_time (Unix seconds)
        self._encrypted_data: Dict[str, int] = {}
        #: WeChat's server-API security, once :meth:`enable_api_security` switched it on.
        self.api_security: Optional[FakeApiSecurity] = None

    # -- users and codes -------------------------------------------------------------------

    def add_app(self, appid: str, secret: str = "") -> None:
        """Serve one more app; without a ``secret``, only a third-party platform that it
        authorised (:meth:`add_component`) can log its users in."""
        with self._lock:
            self._secrets[appid] = secret

    def add_component(self, component_appid: str, authorized_by: Iterable[str] = ()) -> str:
        """Add a third-party platform that the apps ``authorized_by`` authorised (apps not
        yet served are added without a secret); return its ``component_access_token``."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            apps = set(authorized_by)
            for appid in apps:
                self._secrets.setdefault(appid, "")
            self._components[token] = (component_appid, apps)
        return token

    def issue_code(
        self, user: str = "alice", *, ttl: Optional[float] = None, appid: Optional[str] = None
    ) -> str:
        """Register and return a fresh single-use code for ``user``, as ``wx.login()`` gives
        in the app ``appid`` (default: :attr:`appid`).

        The code is valid for ``ttl`` seconds (default :attr:`CODE_TTL`).
        """
        now = time.monotonic()
        with self._lock:
            return self._login_codes.issue(
                user, now, self.CODE_TTL if ttl is None else ttl, appid or self.appid
            )

    def openid_for(self, user: str, appid: Optional[str] = None) -> str:
        """The openid WeChat reports for ``user`` in the app ``appid`` (default:
        :attr:`appid`): 28 characters starting ``o``."""
        return _derived_id("o", f"openid:{appid or self.appid}:{user}")

    def unionid_for(self, user: str) -> Optional[str]:
        """The unionid for ``user``, or ``None`` when the fake runs with ``unionid=False``.

        Unlike the openid it does not depend on the appid: a unionid is the same user across
        every app bound to one open-platform account.
        """
        return _derived_id("u", f"unionid:{user}") if self.unionid else None

    def session_key_for(self, user: str, appid: Optional[str] = None) -> Optional[str]:
        """The session_key WeChat currently holds for ``user`` in the app ``appid``
        (default: :attr:`appid`; the one its latest login or reset issued), or ``None``
        before the user's first login there."""
        with self._lock:
            return self._session_keys.get(self.openid_for(user, appid))

    def issue_phone_code(
        self,
        user: str = "alice",
        phone: str = "13800138000",
        *,
        country_code: str = "86",
        ttl: Optional[float] = None,
    ) -> str:
        """Return a single-use code for ``phone``, as the mini-program's ``getPhoneNumber``
        gives, valid ``ttl`` seconds (default :attr:`CODE_TTL`).

        A request that names an ``openid`` (optional, as at WeChat) must name ``user``'s,
        else it answers 40029 like an unknown code.
        """
        expires_at = time.monotonic() + (self.CODE_TTL if ttl is None else ttl)
        with self._lock:
            return self._phone_codes.issue(user, phone, country_code, expires_at)

    def issue_plugin_code(self, user: str = "alice", *, ttl: Optional[float] = None) -> str:
        """Return a single-use code, as ``wx.pluginLogin`` gives, valid ``ttl`` seconds
        (default :attr:`CODE_TTL`); getpluginopenpid exchanges it for
        :meth:`openpid_for` ``(user)``."""
        code = secrets.token_hex(16)
        with self._lock:
            self._plugin_codes[code] = (user, time.monotonic() + (ttl or self.CODE_TTL))
        return code

    def openpid_for(self, user: str) -> str:
        """The openpid getpluginopenpid reports for ``user``."""
        return _derived_id("p", f"openpid:{self.appid}:{user}")

    def remember_encrypted_data(
        self, encrypted_data: str, create_time: Optional[int] = None
    ) -> None:
        """Make checkencryptedmsg know ``encrypted_data`` (the base64 text) as WeChat's,
        made at ``create_time`` (Unix seconds; default now)."""
        digest = hashlib.sha256(encrypted_data.encode("utf-8")).hexdigest()
        with self._lock:
            self._encrypted_data[digest] = int(time.time()) if create_time is None else create_time

    def enable_api_security(self, security: Optional[FakeApiSecurity] = None) -> FakeApiSecurity:
        """Switch WeChat's server-API security on for the default app, with ``security``
        or new keys (:meth:`FakeApiSecurity.generate`); return it, to configure the client
        (:meth:`FakeApiSecurity.config_options` or :meth:`FakeApiSecurity.write_files`)."""
        self.api_security = security or FakeApiSecurity.generate(self.appid)
        return self.api_security

    def expire_access_tokens(self) -> None:
        """End every access token issued so far: calls with them answer 42001 (expired).

        The next token request gets a new one, from either endpoint.
        """
        now = time.monotonic()
        with self._lock:
            for tokens in self._access_tokens.values():
                tokens.expire_all(now)

    # -- faults, call log ------------------------------------------------------------------

    def inject(
        self, fault: str, count: int = 1, *, path: str = JSCODE2SESSION_PATH, **params: Any
    ) -> None:
        """Queue ``count`` copies of a fault; each request to ``path`` takes the next one.

        ``path`` is jscode2session's unless it names another API the fake serves
        (:data:`TOKEN_PATH`, :data:`STABLE_TOKEN_PATH`, :data:`CHECK_SESSION_PATH`,
        :data:`PHONE_NUMBER_PATH`); faults for one path never touch another's requests.

        Faults and their parameters:

        - ``"errcode"`` (``errcode``, optional ``errmsg``): HTTP 200 ``{"errcode", "errmsg"}``;
          the code is not consumed.
        - ``"http_status"`` (``status=500``): that status with an HTML error page.
        - ``"html"``: HTTP 200 with an HTML page instead of JSON.
        - ``"truncated"``: HTTP 200 declaring a full body, sending ``{"openid": "o`` and closing.
        - ``"huge"`` (``size=5 MB``): HTTP 200 with a valid-looking JSON body of ``size`` bytes.
        - ``"drip"`` (``interval=0.5``, ``length=128``): HTTP 200 with a Content-Length of
          ``length``, one byte every ``interval`` seconds; no single read ever times out.
        - ``"slow"`` (``delay=10``): waits ``delay`` seconds, then answers normally.
        - ``"close"``: closes the connection without answering.
        - ``"no_openid"``: HTTP 200 ``{}``.
        - ``"invalid_json"``: HTTP 200 with a body that is not JSON.

        The success-shaped bodies of ``"huge"`` and ``"drip"`` name ``openid_for("fault")``, so a
        client that accepts them shows up as a login by that user.
        Raises ``ValueError`` for an unknown fault, parameter, value or path.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, got {count!r}")
        if path not in API_ROUTES:
            raise ValueError(f"the fake serves no API at {path!r}")
        made = make_fault(fault, params)
        with self._lock:
            self._faults.setdefault(path, collections.deque()).extend([made] * count)

    def reset(self) -> None:
        """Forget queued faults, the call log and rate counters; restore the initial latency.

        Issued codes, phone codes and access tokens stay valid, and openids never change.
        """
        with self._lock:
            self._faults.clear()
            self._calls.clear()
            self._login_codes.forget_quotas()
            self.latency = self._initial_latency

    @property
    def calls(self) -> List[RecordedCall]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._calls)

    @property
    def jscode2session_calls(self) -> int:
        """How many ``/sns/jscode2session`` requests arrived."""
        return self.calls_to(JSCODE2SESSION_PATH)

    @property
    def token_calls(self) -> int:
        """How many access token requests arrived (``/cgi-bin/token`` and ``stable_token``)."""
        return self.calls_to(TOKEN_PATH, STABLE_TOKEN_PATH)

    @property
    def issued_access_tokens(self) -> List[str]:
        """Every access token issued so far, live or not (to check that none leaks)."""
        with self._lock:
            return [token for tokens in self._access_tokens.values() for token in tokens.issued]

    def calls_to(self, *paths: str) -> int:
        """How many requests to any of ``paths`` arrived."""
        with self._lock:
            return sum(call.path in paths for call in self._calls)

    # -- answering -------------------------------------------------------------------------

    def receive(self, call: RecordedCall) -> Arrival:
        """Record ``call``; if it reaches an API, take its next fault and say how long to wait.

        A call to an unknown path or with the wrong method takes no fault and no wait.
        """
        route = API_ROUTES.get(call.path)
        with self._lock:
            self._calls.append(call)
            if route is None or route[0] != call.method:
                return Arrival(call)
            queued = self._faults.get(call.path)
            fault = queued.popleft() if queued else None
        # A negative latency counts as none.
        wait = max(0.0, self.latency) + (0.0 if fault is None else fault.wait)
        return Arrival(call, fault, wait)

    def reply(self, arrival: Arrival, now: float) -> Optional[Reply]:
        """The answer to a received call at ``now``; ``None`` when its fault drops the
        connection. The answer changes state (a code used, a token issued) only here."""
        call = arrival.call
        route = API_ROUTES.get(call.path)
        if route is None:
            return Reply(404, JSON, error_body(40066, "invalid url"))
        method, content_type = route
        if call.method != method:
            return Reply(200, content_type, error_body(43001 if method == "GET" else 43002))
        if arrival.fault is not None and arrival.fault.replaces_answer:
            return fault_reply(
                arrival.fault,
                decoy_openid=self.openid_for("fault"),
                session_key_factory=self.session_key_factory,
            )
        if self.api_security is not None and call.path in SEALED_PATHS:
            # The URL a sealed call signs: the scheme, the Host it was sent to and the path.
            url = f"http://{call.headers.get('host', '')}{call.path}"
            body, headers = self.api_security.serve(
                call, url, lambda plain: self._answer(plain, now)
            )
            return Reply(200, content_type, body, headers=headers)
        return Reply(200, content_type, self._answer(call, now))

    def _answer(self, call: RecordedCall, now: float) -> bytes:
        """The body of a normal answer from the API at ``call.path``."""
        single = single_values(call.query)
        try:
            if call.path == JSCODE2SESSION_PATH:
                return json_bytes(self._jscode2session(single, now))
            if call.path == COMPONENT_JSCODE2SESSION_PATH:
                return json_bytes(self._component_jscode2session(single, now))
            if call.path == TOKEN_PATH:
                return json_bytes(self._token(single, now))
            if call.path == STABLE_TOKEN_PATH:
                return json_bytes(self._stable_token(json_object(call.body), now))
            with self._lock:
                self._check_access_token(single("access_token"), now)
            if call.path == CHECK_SESSION_PATH:
                self._signed_user(single)
                return json_bytes({"errcode": 0, "errmsg": "ok"})
            if call.path == PHONE_NUMBER_PATH:
                return json_bytes(self._phone_number(json_object(call.body), now))
            if call.path == RESET_SESSION_KEY_PATH:
                return json_bytes(self._reset_session_key(single))
            if call.path == CHECK_ENCRYPTED_MSG_PATH:
                return json_bytes(self._check_encrypted_msg(json_object(call.body)))
            if call.path == PLUGIN_OPENPID_PATH:
                return json_bytes(self._plugin_openpid(json_object(call.body), now))
            return json_bytes(self._user_encrypt_keys(single, now))
        except WeChatError as refusal:
            return error_body(refusal.errcode, refusal.errmsg)

    def _check_credentials(
        self, appid: object, secret: object, grant_type: object, expected_grant_type: str
    ) -> None:
        """Refuse a wrong appid (40013), secret (40125) or ``grant_type`` (40002), in turn."""
        known = self._secrets.get(appid) if isinstance(appid, str) else None
        if known is None:
            raise WeChatError(40013)
        if not known or secret != known:
            raise WeChatError(40125)
        if grant_type != expected_grant_type:
            raise WeChatError(40002)

    def _jscode2session(self, single: Callable[[str], Optional[str]], now: float) -> Dict[str, str]:
        self._check_credentials(
            single("appid"), single("secret"), single("grant_type"), "authorization_code"
        )
        return self._log_in(single("appid") or "", single("js_code"), now)

    def _component_jscode2session(
        self, single: Callable[[str], Optional[str]], now: float
    ) -> Dict[str, str]:
        with self._lock:
            component = self._components.get(single("component_access_token") or "")
        if component is None:
            raise WeChatError(40001)
        component_appid, authorized = component
        if single("component_appid") != component_appid:
            raise WeChatError(40013)
        appid = single("appid") or ""
        if appid not in authorized:
            raise WeChatError(61003)
        if single("grant_type") != "authorization_code":
            raise WeChatError(40002)
        return self._log_in(appid, single("js_code"), now)

    def _log_in(self, appid: str, code: Optional[str], now: float) -> Dict[str, str]:
        """Spend ``code`` of the app ``appid``: its user's openid, a new session_key, and
        the unionid."""
        with self._lock:
            user = self._login_codes.claim(code, now, self.RATE_LIMIT, self.RATE_WINDOW, appid)
            answer = {
                "session_key": self.session_key_factory(),
                "openid": self.openid_for(user, appid),
            }
            self._session_keys[answer["openid"]] = answer["session_key"]
        unionid = self.unionid_for(user)
        if unionid is not None:
            answer["unionid"] = unionid
        return answer

    def _tokens_of(self, appid: object) -> AccessTokens:
        """The access tokens of the app ``appid`` (under the lock)."""
        return self._access_tokens.setdefault(str(appid), AccessTokens())

    def _check_access_token(self, token: Optional[str], now: float) -> None:
        """Refuse a token no app was issued (as :meth:`AccessTokens.check` does), under the
        lock."""
        for tokens in self._access_tokens.values():
            if token in tokens.issued:
                tokens.check(token, now)
                return
        AccessTokens().check(token, now)

    def _token(self, single: Callable[[str], Optional[str]], now: float) -> Dict[str, Any]:
        self._check_credentials(
            single("appid"), single("secret"), single("grant_type"), "client_credential"
        )
        with self._lock:
            token = self._tokens_of(single("appid")).fetch(
                now, self.ACCESS_TOKEN_TTL, self.TOKEN_OVERLAP
            )
        return {"access_token": token, "expires_in": self.ACCESS_TOKEN_TTL}

    def _stable_token(self, request: Optional[Mapping[str, Any]], now: float) -> Dict[str, Any]:
        force = None if request is None else request.get("force_refresh", False)
        if request is None or not isinstance(force, bool):
            raise WeChatError(47001)
        self._check_credentials(
            request.get("appid"),
            request.get("secret"),
            request.get("grant_type"),
            "client_credential",
        )
        with self._lock:
            token, expires_in = self._tokens_of(request.get("appid")).fetch_stable(
                now, self.ACCESS_TOKEN_TTL, self.TOKEN_OVERLAP, force_refresh=force
            )
        return {"access_token": token, "expires_in": expires_in}

    def _signed_user(self, single: Callable[[str], Optional[str]]) -> str:
        """The openid of a call signed with the user's current session_key, as checksession,
        resetusersessionkey and getuserencryptkey check it (40097, 87009)."""
        openid, signature = single("openid") or "", single("signature") or ""
        if single("sig_method") != "hmac_sha256" or not openid or not signature:
            raise WeChatError(40097)
        with self._lock:
            session_key = self._session_keys.get(openid)
        if session_key is None:
            raise WeChatError(87009)
        expected = hmac.new(session_key.encode("utf-8"), b"", hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise WeChatError(87009)
        return openid

    def _reset_session_key(self, single: Callable[[str], Optional[str]]) -> Dict[str, Any]:
        openid = self._signed_user(single)
        session_key = self.session_key_factory()
        with self._lock:
            self._session_keys[openid] = session_key
        return {"errcode": 0, "errmsg": "ok", "openid": openid, "session_key": session_key}

    def _user_encrypt_keys(
        self, single: Callable[[str], Optional[str]], now: float
    ) -> Dict[str, Any]:
        openid = self._signed_user(single)
        with self._lock:
            keys = self._encrypt_keys.setdefault(openid, [])
            if not keys or now - keys[-1]["born"] >= self.ENCRYPT_KEY_TTL:
                keys.append(
                    {
                        "encrypt_key": new_session_key(),
                        "iv": secrets.token_hex(8),
                        "version": len(keys) + 1,
                        "create_time": int(time.time()),
                        "born": now,
                    }
                )
            recent = [dict(key) for key in reversed(keys[-3:])]
        for key in recent:
            key["expire_in"] = max(0, int(key.pop("born") + self.ENCRYPT_KEY_TTL - now))
        return {"errcode": 0, "errmsg": "ok", "key_info_list": recent}

    def _check_encrypted_msg(self, request: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
        digest = None if request is None else request.get("encrypted_msg_hash")
        if not isinstance(digest, str) or not digest:
            raise WeChatError(40097)
        with self._lock:
            created = self._encrypted_data.get(digest)
        if created is None:
            raise WeChatError(1, "encrypted data not exist")
        return {"errcode": 0, "errmsg": "ok", "vaild": True, "create_time": created}

    def _plugin_openpid(self, request: Optional[Mapping[str, Any]], now: float) -> Dict[str, Any]:
        code = None if request is None else request.get("code")
        if not isinstance(code, str):
            raise WeChatError(47001)
        with self._lock:
            user, expires_at = self._plugin_codes.pop(code, ("", 0.0))
        if not user or expires_at <= now:
            raise WeChatError(40029)
        return {"errcode": 0, "errmsg": "ok", "openpid": self.openpid_for(user)}

    def _phone_number(self, request: Optional[Mapping[str, Any]], now: float) -> Dict[str, Any]:
        code = None if request is None else request.get("code")
        if request is None or not isinstance(code, str):
            raise WeChatError(47001)
        with self._lock:
            issued = self._phone_codes.find_unused(code, now)
            # Naming an openid is optional, as at WeChat; a named one must be the user's.
            owner = self.openid_for(issued.user)
            if request.get("openid", owner) != owner:
                raise WeChatError(40029)
            issued.used = True
        pure, country_code = issued.phone, issued.country_code
        return {
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                # WeChat gives numbers outside mainland China with their country code.
                "phoneNumber": pure if country_code == "86" else f"+{country_code}{pure}",
                "purePhoneNumber": pure,
                "countryCode": country_code,
                # A wall-clock Unix time, unlike the monotonic times of the checks.
                "watermark": {"timestamp": int(time.time()), "appid": self.appid},
            },
        }
