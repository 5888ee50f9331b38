"""A fake WeChat API server on loopback, for tests and local development.

WeChat's servers cannot be reached from a test run, and patching the HTTP client hides exactly
the bugs that matter (URL encoding, timeouts, bodies that are not JSON). ``FakeWeChat`` is a real
HTTP server on ``127.0.0.1`` that answers ``GET /sns/jscode2session`` the way WeChat does:
HTTP 200 with ``text/plain`` JSON, failures as an ``errcode`` in the body, single-use codes that
expire after five minutes, and a per-user minute quota. It also serves the server APIs an app
calls itself: access tokens (``/cgi-bin/token``, ``/cgi-bin/stable_token``),
``/wxa/checksession`` and ``/wxa/business/getuserphonenumber``. Point the middleware's API base
at ``fake.url``::

    from wxmiddleware.testing import FakeWeChat

    with FakeWeChat() as fake:
        app = WxMiddleware(inner_app, appid=fake.appid, secret=fake.secret, api_base=fake.url)
        code = fake.issue_code("alice")          # what wx.login() would give the mini-program
        ...                                      # POST it to the login path
        assert fake.jscode2session_calls == 1

Failures are injected one per jscode2session request (or per request to ``path``), first in
first out::

    fake.inject("errcode", errcode=-1)           # "system busy" once, then normal answers
    fake.inject("slow", delay=10)                # longer than any sane read timeout
    fake.inject("close", count=2)                # the connection drops, twice
    fake.inject("errcode", errcode=-1, path=PHONE_NUMBER_PATH)

Access tokens and phone numbers::

    code = fake.issue_phone_code("alice", phone="13800138000")   # getPhoneNumber's code
    fake.expire_access_tokens()                  # calls with them now answer 42001
    assert fake.token_calls == 1                 # /cgi-bin/token and /cgi-bin/stable_token

With pytest, the ``fake_wechat`` and ``fake_wechat_env`` fixtures (``wxmiddleware.pytest_plugin``)
give each test a started server. For an environment that cannot call Python (a team's
integration setup, a Node test), run ``python -m wxmiddleware.testing --port 8601`` and use the
control endpoints: ``GET /fake/code?user=alice``, ``GET /fake/phone_code?user=alice&phone=…``,
``POST /fake/fault`` (JSON body ``{"fault": "errcode", "count": 1, "errcode": -1}``, optionally
with ``"path"``), ``POST /fake/expire_access_tokens``, ``GET /fake/calls``, ``POST /fake/reset``.

This module uses the standard library only.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import socket
import socketserver
import string
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    FrozenSet,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Type,
    Union,
)
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "CHECK_SESSION_PATH",
    "FAULTS",
    "JSCODE2SESSION_PATH",
    "PHONE_NUMBER_PATH",
    "STABLE_TOKEN_PATH",
    "TOKEN_PATH",
    "FakeWeChat",
    "LoginFailed",
    "RecordedCall",
    "log_in",
    "log_in_async",
    "main",
]

logger = logging.getLogger(__name__)

JSCODE2SESSION_PATH = "/sns/jscode2session"
TOKEN_PATH = "/cgi-bin/token"  # noqa: S105 (a URL path)
STABLE_TOKEN_PATH = "/cgi-bin/stable_token"  # noqa: S105 (a URL path)
CHECK_SESSION_PATH = "/wxa/checksession"
PHONE_NUMBER_PATH = "/wxa/business/getuserphonenumber"

# The method each API answers, and the Content-Type of its answers.
_API_ROUTES: Dict[str, Tuple[str, str]] = {
    JSCODE2SESSION_PATH: ("GET", "text/plain"),
    TOKEN_PATH: ("GET", "application/json; encoding=utf-8"),
    STABLE_TOKEN_PATH: ("POST", "application/json; encoding=utf-8"),
    CHECK_SESSION_PATH: ("GET", "application/json; encoding=utf-8"),
    PHONE_NUMBER_PATH: ("POST", "application/json; encoding=utf-8"),
}

_CODE_ALPHABET = string.ascii_letters + string.digits
_MAX_CONTROL_BODY = 64 * 1024
_CONTROL_PREFIX = "/fake/"

# The keyword parameters each fault accepts, and the type each parameter must have.
_FAULT_PARAMS: Dict[str, FrozenSet[str]] = {
    "errcode": frozenset({"errcode", "errmsg"}),
    "http_status": frozenset({"status"}),
    "html": frozenset(),
    "truncated": frozenset(),
    "huge": frozenset({"size"}),
    "drip": frozenset({"interval", "length"}),
    "slow": frozenset({"delay"}),
    "close": frozenset(),
    "no_openid": frozenset(),
    "invalid_json": frozenset(),
}
_PARAM_TYPES: Dict[str, Union[type, Tuple[type, ...]]] = {
    "errcode": int,
    "errmsg": str,
    "status": int,
    "size": int,
    "length": int,
    "interval": (int, float),
    "delay": (int, float),
}

FAULTS: Tuple[str, ...] = tuple(_FAULT_PARAMS)
"""The fault kinds :meth:`FakeWeChat.inject` accepts."""

# Messages WeChat sends for the errcodes a client is likely to meet; used when an injected
# errcode fault names no errmsg.
_ERRMSGS: Dict[int, str] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40013: "invalid appid",
    40029: "invalid code",
    40097: "invalid args",
    40125: "invalid appsecret",
    40163: "code been used",
    40226: "invalid user",
    41001: "access_token missing",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    45011: "api minute-quota reach limit",
    47001: "data format error",
    87009: "invalid signature",
}

_HTML_PAGE = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
    "<body><center><h1>{title}</h1></center><hr><center>nginx</center></body></html>\n"
)


@dataclass(frozen=True)
class RecordedCall:
    """One request the fake received (control endpoints under ``/fake/`` are not recorded).

    ``query`` holds the decoded ``(name, value)`` pairs in the order they were sent, repeats
    included, so a test can see exactly what a client put on the wire; ``raw_query`` is the
    query string before decoding.
    """

    method: str
    path: str
    query: List[Tuple[str, str]] = field(hash=False)
    raw_query: str
    #: The request body as sent (the JSON of a POST), shown by neither ``repr`` nor ``str``.
    body: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class _Fault:
    kind: str
    errcode: int = -1
    errmsg: Optional[str] = None
    status: int = 500
    size: int = 5 * 1024 * 1024
    interval: float = 0.5
    length: int = 128
    delay: float = 10.0


@dataclass
class _IssuedCode:
    user: str
    expires_at: float
    used: bool = False


@dataclass
class _PhoneCode:
    user: str
    phone: str
    country_code: str
    expires_at: float
    used: bool = False


@dataclass
class _IssuedToken:
    expires_at: float
    replaced: bool = False  # by a force_refresh: it answers 40001 as an unknown one would


def _make_fault(kind: str, params: Mapping[str, Any]) -> _Fault:
    if kind not in _FAULT_PARAMS:
        raise ValueError(f"unknown fault {kind!r}; known faults: {', '.join(FAULTS)}")
    unexpected = sorted(set(params) - _FAULT_PARAMS[kind])
    if unexpected:
        raise ValueError(f"fault {kind!r} takes no parameter {', '.join(unexpected)}")
    if kind == "errcode" and "errcode" not in params:
        raise ValueError("fault 'errcode' needs errcode=<int>")
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, _PARAM_TYPES[name]):
            raise ValueError(f"fault parameter {name} has the wrong type: {value!r}")
    fault = _Fault(kind, **params)
    if not 400 <= fault.status <= 599:
        raise ValueError(f"status must be an HTTP error status (400-599), got {fault.status}")
    if min(fault.size, fault.length) < 1 or min(fault.interval, fault.delay) < 0:
        raise ValueError("size and length must be positive, interval and delay not negative")
    return fault


def _rid() -> str:
    # Real errmsgs end in a request id, e.g. "invalid code, rid: 6581f0a2-3c1b2d4e-5f6a7b8c".
    return "-".join(secrets.token_hex(4) for _ in range(3))


def _error_body(errcode: int, errmsg: Optional[str] = None) -> bytes:
    if errmsg is None:
        errmsg = f"{_ERRMSGS.get(errcode, 'system error')}, rid: {_rid()}"
    return _json_bytes({"errcode": errcode, "errmsg": errmsg})


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _json_object(body: bytes) -> Optional[Dict[str, Any]]:
    """A request's JSON object body, or ``None`` for anything else."""
    try:
        value = json.loads(body)
    except ValueError:  # bad JSON and bad UTF-8 alike
        return None
    return value if isinstance(value, dict) else None


def _single_values(query: Sequence[Tuple[str, str]]) -> Callable[[str], Optional[str]]:
    """Look a parameter up; one sent more than once counts as missing, as an invalid value
    would, so that a client that builds its query by string concatenation is caught."""
    values: Dict[str, List[str]] = {}
    for name, value in query:
        values.setdefault(name, []).append(value)

    def single(name: str) -> Optional[str]:
        found = values.get(name, [])
        return found[0] if len(found) == 1 else None

    return single


def _derived_id(prefix: str, material: str) -> str:
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    return prefix + base64.urlsafe_b64encode(digest).decode("ascii")[:27]


def _new_session_key() -> str:
    return base64.b64encode(secrets.token_bytes(16)).decode("ascii")


class FakeWeChat:
    """A WeChat ``jscode2session`` endpoint on loopback, running in a background thread.

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
      :attr:`access_token_ttl` seconds; the token it issued before stops working five minutes
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
    - ``POST /wxa/business/getuserphonenumber`` takes ``{"code": …}`` from
      :meth:`issue_phone_code` (single-use, five minutes; else 40029) and answers its
      ``phone_info``.

    A known path called with the wrong method answers 43001 or 43002.
    Faults (see :meth:`inject`) replace the whole answer of one request and leave the code
    untouched, except ``"slow"``, which answers normally after its delay.
    ``latency`` (seconds, settable) delays every API answer.
    """

    CODE_TTL = 300.0
    """Seconds a code from :meth:`issue_code` stays valid, as with ``wx.login()``."""
    RATE_LIMIT = 100
    """Logins per user allowed within :attr:`RATE_WINDOW` seconds."""
    RATE_WINDOW = 60.0
    DEFAULT_APPID = "wx0123456789abcdef"
    DEFAULT_SECRET = "fake-secret-0123456789"  # noqa: S105 (the fake's own secret)
    ACCESS_TOKEN_TTL = 7200
    """Seconds an access token is valid (the ``expires_in`` of a new one)."""
    TOKEN_OVERLAP = 300.0
    """Seconds a token stays valid after its successor: the old ``/cgi-bin/token`` token
    after a new fetch, and the window in which stable_token hands out the next one."""

    def __init__(
        self,
        appid: str = DEFAULT_APPID,
        secret: str = DEFAULT_SECRET,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        unionid: bool = True,
        latency: float = 0.0,
    ) -> None:
        self.appid = appid
        self.secret = secret
        self.host = host
        self.unionid = unionid
        self.latency = latency
        self._initial_latency = latency
        self._requested_port = port
        self._lock = threading.Lock()
        self._codes: Dict[str, _IssuedCode] = {}
        self._logins: Dict[str, Deque[float]] = {}
        self._faults: Dict[str, Deque[_Fault]] = {}
        # openid -> the session_key of its latest login (what checksession accepts)
        self._session_keys: Dict[str, str] = {}
        self._phone_codes: Dict[str, _PhoneCode] = {}
        self._access_tokens: Dict[str, _IssuedToken] = {}
        # The latest token of each endpoint: True for stable_token, False for token.
        self._latest_token: Dict[bool, str] = {}
        self._calls: List[RecordedCall] = []
        self._stopping = threading.Event()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeWeChat:
        """Bind the port and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("FakeWeChat is already running")
        self._stopping.clear()
        server = _Server((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeWeChat:{server.server_port}",
            daemon=True,
        )
        self._server = server
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections, without waiting for slow answers."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()  # wakes every handler sleeping in a delay
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeWeChat:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<FakeWeChat {where} appid={self.appid!r}>"

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        if self._server is None:
            raise RuntimeError("FakeWeChat is not running; call start() first")
        return self._server.server_port

    @property
    def url(self) -> str:
        """The API base to give the middleware, e.g. ``"http://127.0.0.1:41234"``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- users and codes -------------------------------------------------------------------

    def issue_code(self, user: str = "alice", *, ttl: Optional[float] = None) -> str:
        """Register and return a fresh single-use code for ``user``, as ``wx.login()`` gives.

        The code is valid for ``ttl`` seconds (default :attr:`CODE_TTL`).
        """
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(32))
        now = time.monotonic()
        expires_at = now + (self.CODE_TTL if ttl is None else ttl)
        with self._lock:
            # Expired codes answer 40029 whether used or not, so they need not be kept.
            for stale in [c for c, issued in self._codes.items() if issued.expires_at <= now]:
                del self._codes[stale]
            self._codes[code] = _IssuedCode(user, expires_at)
        return code

    def openid_for(self, user: str) -> str:
        """The openid WeChat reports for ``user`` in this app: 28 characters starting ``o``."""
        return _derived_id("o", f"openid:{self.appid}:{user}")

    def unionid_for(self, user: str) -> Optional[str]:
        """The unionid for ``user``, or ``None`` when the fake runs with ``unionid=False``.

        Unlike the openid it does not depend on the appid: a unionid is the same user across
        every app bound to one open-platform account.
        """
        return _derived_id("u", f"unionid:{user}") if self.unionid else None

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
        code = secrets.token_hex(32)
        expires_at = time.monotonic() + (self.CODE_TTL if ttl is None else ttl)
        with self._lock:
            self._phone_codes[code] = _PhoneCode(user, phone, country_code, expires_at)
        return code

    def expire_access_tokens(self) -> None:
        """End every access token issued so far: calls with them answer 42001 (expired).

        The next token request gets a new one, from either endpoint.
        """
        now = time.monotonic()
        with self._lock:
            for issued in self._access_tokens.values():
                issued.expires_at = min(issued.expires_at, now)

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
        if path not in _API_ROUTES:
            raise ValueError(f"the fake serves no API at {path!r}")
        made = _make_fault(fault, params)
        with self._lock:
            self._faults.setdefault(path, collections.deque()).extend([made] * count)

    def reset(self) -> None:
        """Forget queued faults, the call log and rate counters; restore the initial latency.

        Issued codes, phone codes and access tokens stay valid, and openids never change.
        """
        with self._lock:
            self._faults.clear()
            self._calls.clear()
            self._logins.clear()
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
            return list(self._access_tokens)

    def calls_to(self, *paths: str) -> int:
        """How many requests to any of ``paths`` arrived."""
        with self._lock:
            return sum(call.path in paths for call in self._calls)

    # -- used by the request handler -------------------------------------------------------

    def _record(self, call: RecordedCall) -> None:
        with self._lock:
            self._calls.append(call)

    def _next_fault(self, path: str) -> Optional[_Fault]:
        with self._lock:
            queued = self._faults.get(path)
            return queued.popleft() if queued else None

    def _pause(self, seconds: float) -> bool:
        """Sleep, returning ``False`` at once when the server is stopping."""
        return seconds <= 0 or not self._stopping.wait(seconds)

    def _answer(self, path: str, query: Sequence[Tuple[str, str]], body: bytes) -> bytes:
        """The body of a normal answer from the API at ``path``."""
        single = _single_values(query)
        if path == JSCODE2SESSION_PATH:
            return self._jscode2session(single)
        if path == TOKEN_PATH:
            return self._token(single)
        if path == STABLE_TOKEN_PATH:
            return self._stable_token(body)
        rejected = self._check_access_token(single("access_token"))
        if rejected is not None:
            return rejected
        if path == CHECK_SESSION_PATH:
            return self._checksession(single)
        return self._phone_number(body)

    def _jscode2session(self, single: Callable[[str], Optional[str]]) -> bytes:
        if single("appid") != self.appid:
            return _error_body(40013)
        if single("secret") != self.secret:
            return _error_body(40125)
        if single("grant_type") != "authorization_code":
            return _error_body(40002)
        code = single("js_code")
        now = time.monotonic()
        with self._lock:
            issued = self._codes.get(code) if code else None
            if issued is None or issued.expires_at <= now:
                return _error_body(40029)
            if issued.used:
                return _error_body(40163)
            window = self._logins.setdefault(issued.user, collections.deque())
            while window and window[0] <= now - self.RATE_WINDOW:
                window.popleft()
            window.append(now)
            if len(window) > self.RATE_LIMIT:
                return _error_body(45011)
            issued.used = True
            answer = {"session_key": _new_session_key(), "openid": self.openid_for(issued.user)}
            self._session_keys[answer["openid"]] = answer["session_key"]
        unionid = self.unionid_for(issued.user)
        if unionid is not None:
            answer["unionid"] = unionid
        return _json_bytes(answer)

    def _credentials_error(
        self, appid: object, secret: object, grant_type: object
    ) -> Optional[bytes]:
        """The error answer for a token request with wrong credentials; ``None`` if right."""
        if appid != self.appid:
            return _error_body(40013)
        if secret != self.secret:
            return _error_body(40125)
        if grant_type != "client_credential":
            return _error_body(40002)
        return None

    def _token(self, single: Callable[[str], Optional[str]]) -> bytes:
        refused = self._credentials_error(single("appid"), single("secret"), single("grant_type"))
        if refused is not None:
            return refused
        now = time.monotonic()
        with self._lock:
            previous = self._access_tokens.get(self._latest_token.get(False, ""))
            if previous is not None:
                previous.expires_at = min(previous.expires_at, now + self.TOKEN_OVERLAP)
            token = self._new_access_token(stable=False, now=now)
        return _json_bytes({"access_token": token, "expires_in": self.ACCESS_TOKEN_TTL})

    def _stable_token(self, body: bytes) -> bytes:
        request = _json_object(body)
        force = None if request is None else request.get("force_refresh", False)
        if request is None or not isinstance(force, bool):
            return _error_body(47001)
        refused = self._credentials_error(
            request.get("appid"), request.get("secret"), request.get("grant_type")
        )
        if refused is not None:
            return refused
        now = time.monotonic()
        with self._lock:
            token = self._latest_token.get(True, "")
            current = self._access_tokens.get(token)
            if current is not None and force:
                current.replaced = True  # force_refresh ends the old token at once
            elif current is not None and current.expires_at - now > self.TOKEN_OVERLAP:
                # The same token, with the seconds it has left, as WeChat answers.
                left = int(current.expires_at - now)
                return _json_bytes({"access_token": token, "expires_in": left})
            token = self._new_access_token(stable=True, now=now)
        return _json_bytes({"access_token": token, "expires_in": self.ACCESS_TOKEN_TTL})

    def _new_access_token(self, *, stable: bool, now: float) -> str:
        # Real tokens are about 150 URL-safe characters; the caller holds the lock.
        token = secrets.token_urlsafe(110)
        self._access_tokens[token] = _IssuedToken(now + self.ACCESS_TOKEN_TTL)
        self._latest_token[stable] = token
        return token

    def _check_access_token(self, token: Optional[str]) -> Optional[bytes]:
        """The error answer for a missing, unknown or expired token; ``None`` if it is good."""
        if not token:
            return _error_body(41001)
        with self._lock:
            issued = self._access_tokens.get(token)
        if issued is None or issued.replaced:
            return _error_body(40001)
        if issued.expires_at <= time.monotonic():
            return _error_body(42001)
        return None

    def _checksession(self, single: Callable[[str], Optional[str]]) -> bytes:
        openid, signature = single("openid") or "", single("signature") or ""
        if single("sig_method") != "hmac_sha256" or not openid or not signature:
            return _error_body(40097)
        with self._lock:
            session_key = self._session_keys.get(openid)
        if session_key is None:
            return _error_body(87009)
        expected = hmac.new(session_key.encode("utf-8"), b"", hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return _error_body(87009)
        return _json_bytes({"errcode": 0, "errmsg": "ok"})

    def _phone_number(self, body: bytes) -> bytes:
        request = _json_object(body)
        code = None if request is None else request.get("code")
        if request is None or not isinstance(code, str):
            return _error_body(47001)
        now = time.monotonic()
        with self._lock:
            issued = self._phone_codes.get(code)
            if issued is None or issued.used or issued.expires_at <= now:
                return _error_body(40029)
            if request.get("openid", self.openid_for(issued.user)) != self.openid_for(issued.user):
                return _error_body(40029)
            issued.used = True
        pure, country_code = issued.phone, issued.country_code
        return _json_bytes(
            {
                "errcode": 0,
                "errmsg": "ok",
                "phone_info": {
                    # WeChat gives numbers outside mainland China with their country code.
                    "phoneNumber": pure if country_code == "86" else f"+{country_code}{pure}",
                    "purePhoneNumber": pure,
                    "countryCode": country_code,
                    "watermark": {"timestamp": int(time.time()), "appid": self.appid},
                },
            }
        )

    def _padded_body(self, size: int) -> bytes:
        """A success-shaped JSON body of exactly ``size`` bytes (a prefix if ``size`` is tiny)."""
        answer = {"session_key": _new_session_key(), "openid": self.openid_for("fault")}
        bare = _json_bytes({**answer, "padding": ""})
        padded = _json_bytes({**answer, "padding": "x" * max(0, size - len(bare))})
        return padded[:size]

    def _control(self, method: str, path: str, query: str, body: bytes) -> Tuple[int, object]:
        """Answer a ``/fake/...`` control request: ``(status, JSON value)``."""
        if (method, path) == ("GET", "/fake/code"):
            user = dict(parse_qsl(query)).get("user", "alice")
            return 200, {"code": self.issue_code(user)}
        if (method, path) == ("GET", "/fake/phone_code"):
            params = dict(parse_qsl(query))
            code = self.issue_phone_code(
                params.get("user", "alice"), params.get("phone", "13800138000")
            )
            return 200, {"code": code}
        if (method, path) == ("POST", "/fake/expire_access_tokens"):
            self.expire_access_tokens()
            return 200, {"ok": True}
        if (method, path) == ("POST", "/fake/fault"):
            try:
                spec = json.loads(body)
                if not isinstance(spec, dict) or not isinstance(spec.get("fault"), str):
                    raise ValueError('expected a JSON object with a "fault" name')
                kind, count = spec.pop("fault"), spec.pop("count", 1)
                path = spec.pop("path", JSCODE2SESSION_PATH)
                self.inject(kind, count, path=path, **spec)
            except (TypeError, ValueError) as exc:  # a bad JSON body, fault or parameter name
                return 400, {"ok": False, "error": str(exc)}
            return 200, {"ok": True}
        if (method, path) == ("GET", "/fake/calls"):
            return 200, {"jscode2session": self.jscode2session_calls}
        if (method, path) == ("POST", "/fake/reset"):
            self.reset()
            return 200, {"ok": True}
        return 404, {"errcode": 40066, "errmsg": "invalid url"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Handler threads are not joined on close: stop() must not wait for a slow answer.
    block_on_close = False
    # socketserver's backlog of 5 drops connections when an async client opens many at once.
    request_queue_size = 1024

    def __init__(self, address: Tuple[str, int], fake: FakeWeChat) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.fake = fake
        self._connections: Set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on reverse DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection, waking handlers blocked on a keep-alive read."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # a client that went away
            logger.debug("connection from %s ended: %r", client_address, exc)
        else:
            logger.error("FakeWeChat handler failed", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    server_version = "FakeWeChat"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection does not hold a thread forever
    # Headers and body are separate writes; with Nagle on, a keep-alive client waits ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def log_request(self, code: Union[int, str] = "-", size: Union[int, str] = "-") -> None:
        # The query string carries the secret and the code: log the path only.
        logger.debug("%s %s -> %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s", (format % args).split("?", 1)[0])

    def _dispatch(self) -> None:
        fake = self.server.fake
        target = urlsplit(self.path)
        body = self._read_body()
        if body is None:
            return
        if target.path.startswith(_CONTROL_PREFIX):
            status, value = fake._control(self.command, target.path, target.query, body)
            self._send(status, _json_bytes(value), "application/json")
            return
        query = parse_qsl(target.query, keep_blank_values=True)
        fake._record(RecordedCall(self.command, target.path, query, target.query, body))
        route = _API_ROUTES.get(target.path)
        if route is None:
            self._send(404, _error_body(40066, "invalid url"), "application/json")
            return
        method, content_type = route
        if self.command != method:
            self._send(200, _error_body(43001 if method == "GET" else 43002), content_type)
            return
        fault = fake._next_fault(target.path)
        if not fake._pause(fake.latency):
            self.close_connection = True
            return
        if fault is None or fault.kind == "slow":
            if fault is not None and not fake._pause(fault.delay):
                self.close_connection = True
                return
            self._send(200, fake._answer(target.path, query, body), content_type)
        else:
            _FAULT_ANSWERS[fault.kind](self, fault)

    def _read_body(self) -> Optional[bytes]:
        """The request body, or ``None`` after answering a body the fake will not read."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if "Transfer-Encoding" in self.headers or not 0 <= length <= _MAX_CONTROL_BODY:
            self.close_connection = True
            self._send(400, _error_body(44002, "invalid request body"), "application/json")
            return None
        return self.rfile.read(length)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        *,
        declared_length: Optional[int] = None,
    ) -> None:
        length = len(body) if declared_length is None else declared_length
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    # -- fault answers ---------------------------------------------------------------------

    def _fault_errcode(self, fault: _Fault) -> None:
        self._send(200, _error_body(fault.errcode, fault.errmsg), "text/plain")

    def _fault_http_status(self, fault: _Fault) -> None:
        title = f"{fault.status} {_phrase(fault.status)}".strip()
        self._send(fault.status, _HTML_PAGE.format(title=title).encode(), "text/html")

    def _fault_html(self, fault: _Fault) -> None:
        page = _HTML_PAGE.format(title="系统繁忙 请稍后再试")  # "system busy, try again later"
        self._send(200, page.encode("utf-8"), "text/html; charset=utf-8")

    def _fault_truncated(self, fault: _Fault) -> None:
        self.close_connection = True
        self._send(200, b'{"openid": "o', "text/plain", declared_length=100)

    def _fault_huge(self, fault: _Fault) -> None:
        body = self.server.fake._padded_body(fault.size)
        self.close_connection = True  # the client may stop reading half way
        self._send(200, body, "text/plain")

    def _fault_drip(self, fault: _Fault) -> None:
        body = self.server.fake._padded_body(fault.length)
        self.close_connection = True
        self._send(200, b"", "text/plain", declared_length=len(body))
        for index in range(len(body)):
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
            if not self.server.fake._pause(fault.interval):
                return

    def _fault_close(self, fault: _Fault) -> None:
        self.close_connection = True

    def _fault_no_openid(self, fault: _Fault) -> None:
        self._send(200, b"{}", "text/plain")

    def _fault_invalid_json(self, fault: _Fault) -> None:
        openid = self.server.fake.openid_for("fault")
        self._send(200, f'{{"openid": "{openid}" "session_key": }}'.encode(), "text/plain")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


_FAULT_ANSWERS: Dict[str, Callable[[_Handler, _Fault], None]] = {
    "errcode": _Handler._fault_errcode,
    "http_status": _Handler._fault_http_status,
    "html": _Handler._fault_html,
    "truncated": _Handler._fault_truncated,
    "huge": _Handler._fault_huge,
    "drip": _Handler._fault_drip,
    "close": _Handler._fault_close,
    "no_openid": _Handler._fault_no_openid,
    "invalid_json": _Handler._fault_invalid_json,
}


class LoginFailed(AssertionError):
    """A test login through the app did not answer 200 with a token."""


def _post_login(client: Any, path: str, code: str) -> Any:
    # WebTest's TestApp has post_json; Flask's test client, httpx and Starlette's TestClient
    # all take json= on post().
    post_json = getattr(client, "post_json", None)
    if post_json is not None:
        return post_json(path, {"code": code}, expect_errors=True)
    return client.post(path, json={"code": code})


def _token_from(response: Any) -> str:
    status = getattr(response, "status_code", None) or getattr(response, "status_int", None)
    payload = response.json
    if callable(payload):  # httpx and Starlette: a method; WebTest and Flask: a property
        payload = payload()
    if status != 200 or not isinstance(payload, dict) or "3rd_session" not in payload:
        raise LoginFailed(f"the test login answered {status}: {payload!r}")
    token: str = payload["3rd_session"]
    return token


def log_in(client: Any, fake: FakeWeChat, user: str = "alice", path: str = "/wx/login") -> str:
    """Log ``user`` in through the app under test and return the session token.

    ``client`` is a WebTest ``TestApp``, a Flask test client, an ``httpx.Client`` or a
    Starlette ``TestClient`` in front of an app wrapped by the middleware, which must be
    pointed at ``fake``. Send the token back as the ``3rd-session`` header.
    """
    return _token_from(_post_login(client, path, fake.issue_code(user)))


async def log_in_async(
    client: Any, fake: FakeWeChat, user: str = "alice", path: str = "/wx/login"
) -> str:
    """:func:`log_in` for an ``httpx.AsyncClient``."""
    response = await client.post(path, json={"code": fake.issue_code(user)})
    return _token_from(response)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a FakeWeChat in the foreground until interrupted (``python -m wxmiddleware.testing``)."""
    parser = argparse.ArgumentParser(
        prog="python -m wxmiddleware.testing",
        description="Serve a fake WeChat API (login, access tokens, checksession, phone numbers).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=8601, help="port; 0 picks a free one")
    parser.add_argument("--appid", default=FakeWeChat.DEFAULT_APPID, help="the appid to accept")
    parser.add_argument("--secret", default=FakeWeChat.DEFAULT_SECRET, help="the secret to accept")
    args = parser.parse_args(argv)
    fake = FakeWeChat(args.appid, args.secret, host=args.host, port=args.port)
    try:
        fake.start()
    except OSError as exc:
        parser.exit(1, f"cannot listen on {args.host}:{args.port}: {exc}\n")
    try:
        print(f"FakeWeChat listening on {fake.url}", flush=True)
        print(f"  appid={fake.appid} secret={fake.secret}", flush=True)
        print(f"  get a login code:  curl '{fake.url}/fake/code?user=alice'", flush=True)
        print(f"  get a phone code:  curl '{fake.url}/fake/phone_code?phone=13800138000'")
        print("  faults: POST /fake/fault, calls: GET /fake/calls, reset: POST /fake/reset")
        print("Press Ctrl-C to stop.", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
