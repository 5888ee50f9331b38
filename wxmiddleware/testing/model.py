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

The model is one class over its API groups: the state it keeps (:mod:`._model_base`), the
login APIs (:mod:`._model_login`), the access tokens (:mod:`._model_tokens`) and the APIs
about one user (:mod:`._model_user`); this module receives calls, routes them and injects
faults.
"""

from __future__ import annotations

import collections
from typing import Any, List, Optional

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
from ._model_base import new_session_key
from ._model_login import LoginApis
from ._model_tokens import AccessTokenApis
from ._model_user import UserApis
from ._replies import JSON, Reply, WeChatError, error_body, json_bytes
from ._requests import API_ROUTES, Arrival, RecordedCall, json_object, single_values
from ._security import SEALED_PATHS, FakeApiSecurity
from .faults import fault_reply, make_fault

__all__ = ["API_ROUTES", "Arrival", "RecordedCall", "WeChatModel", "new_session_key"]


class WeChatModel(LoginApis, AccessTokenApis, UserApis):
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

    def enable_api_security(self, security: Optional[FakeApiSecurity] = None) -> FakeApiSecurity:
        """Switch WeChat's server-API security on for the default app, with ``security``
        or new keys (:meth:`FakeApiSecurity.generate`); return it, to configure the client
        (:meth:`FakeApiSecurity.config_options` or :meth:`FakeApiSecurity.write_files`)."""
        self.api_security = security or FakeApiSecurity.generate(self.appid)
        return self.api_security

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
