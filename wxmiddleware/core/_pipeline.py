"""The request pipeline: every request, from the view to an outcome, decided here.

:meth:`Pipeline.handle` classifies the request, picks the token, authenticates, logs in or
out, and shapes every error (Wafer's dialect included). What it returns is a plan: the
outcome itself when no I/O is needed, a :class:`SessionLookup` (the one store call most
requests need, and what its result decides), or a flow of effects (:mod:`._effects`) for a
login or logout. Every plan ends in an outcome: :class:`Forward` the request to the app
(with its session), :class:`Respond` with an answer, or :data:`DROP` it (the client is
gone). The adapters build the view, run the plan with a performer and translate the
outcome; they decide nothing.
"""

from __future__ import annotations

import logging
from types import GeneratorType
from typing import Any, Callable, Collection, Dict, Mapping, Optional, Type, Union, cast

from ..config import WxConfig
from ..errors import BadRequest, InvalidSession, StoreUnavailable, WxError
from ..observe import (
    ANONYMOUS,
    AUTHENTICATED,
    BAD_REQUEST,
    EXPIRED,
    INVALID,
    MISSING,
    PREFLIGHT,
    PUBLIC,
    RATE_LIMITED,
    STORE_DOWN,
    Observer,
)
from ..session import SessionScope, WxSession, code_key, short_hash, token_key
from ._apps import AppSelector
from ._cors import Cors
from ._effects import CallHook, ClientDisconnected, Flow, Notify, ReadBody, StoreCall
from ._limits import LoginLimits, LoginRateLimited
from ._login import login_flow
from ._request import (
    HeaderMap,
    HeaderNames,
    RequestView,
    body_length,
    body_too_large,
    check_login_method,
    check_logout_method,
    login_code_from_query,
    login_from_body,
    missing_token_error,
    pick_token,
)
from ._responses import (
    Response,
    error_response,
    head_response,
    login_response,
    logout_response,
)
from ._routing import RequestKind, Router, near_miss_error
from ._wafer import (
    wafer_error,
    wafer_login,
    wafer_login_response,
    wafer_userinfo,
)

logger = logging.getLogger("wxmiddleware")

# Module constants: an enum member read through its class costs tens of nanoseconds, and
# every request compares its kind several times.
_LOGIN = RequestKind.LOGIN
_LOGOUT = RequestKind.LOGOUT
_PUBLIC = RequestKind.PUBLIC
_OPTIONAL = RequestKind.OPTIONAL
_PROTECTED = RequestKind.PROTECTED


class Forward:
    """Pass the request to the app; ``session`` is attached unless ``attach`` is false.

    ``session`` is ``None`` on an optional path without a valid token. A public path is
    forwarded with ``attach=False``: the app gets the request untouched. Adapters test for
    it with ``isinstance`` (a found :class:`SessionLookup` is one).
    """

    __slots__ = ("attach", "session")

    def __init__(self, session: Optional[WxSession], attach: bool = True) -> None:
        self.session = session
        self.attach = attach


class Respond:
    """Answer the request with ``response`` (a websocket is closed with its close code)."""

    __slots__ = ("response",)

    def __init__(self, response: Response) -> None:
        self.response = response


class _Drop:
    """The client went away: nobody waits for an answer, so none is sent."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()
_UNTOUCHED = Forward(None, attach=False)
_ANONYMOUS = Forward(None)

#: What a request comes to.
Outcome = Union[Forward, Respond, _Drop]


class SessionLookup(Forward):
    """The one store call most requests need, and what its result decides.

    An authenticated request is a flow of one effect: look the token up, then forward or
    refuse. Written as this continuation instead of a generator it costs less per request,
    and every request of an app pays that. A performer calls ``store.get(token, idle_ttl,
    scope)`` and hands the result to :meth:`found`, or the exception to :meth:`failed`; both
    give the outcome. Found, the lookup is itself the :class:`Forward` (one object per request).
    """

    __slots__ = ("_kind", "_pipeline", "_view", "idle_ttl", "scope", "token")
    #: A found session is always attached (a class attribute: one store less per request).
    attach = True

    def __init__(self, pipeline: Pipeline, view: RequestView, kind: RequestKind, token: str):
        self.token = token
        self.idle_ttl = pipeline.idle_ttl
        self.scope = pipeline.scope
        self._pipeline = pipeline
        self._view = view
        self._kind = kind

    def __repr__(self) -> str:
        return f"SessionLookup({self._kind.value})"

    def found(self, session: Optional[WxSession]) -> Plan:
        """The plan once the store answered ``session`` (``None``: no live session): this
        lookup itself (the :class:`Forward`), or the refusal (a flow when ``on_reject`` is
        set, which the performer runs)."""
        if session is None and self._kind is _PROTECTED:
            return self._pipeline.failure(
                self._view, self._kind, InvalidSession(), EXPIRED, self.token
            )
        self.session = session
        return self

    def failed(self, error: Exception) -> Plan:
        """The plan once the store raised ``error`` (a down store answers 503)."""
        if isinstance(error, WxError):
            log_failure("session lookup", error, short_hash(token_key(self.token)))
        return self._pipeline.failure(self._view, self._kind, error, STORE_DOWN, self.token)


class ObservedLookup(SessionLookup):
    """A :class:`SessionLookup` that tells the pipeline's observer what it came to; used
    only when there is an observer, so that the lookup costs nothing more without one."""

    __slots__ = ()

    def found(self, session: Optional[WxSession]) -> Plan:
        plan = super().found(session)
        if plan is self:
            observer: Observer = self._pipeline.observer  # type: ignore[assignment]
            observer.request(AUTHENTICATED if session is not None else ANONYMOUS)
        return plan


#: What :meth:`Pipeline.handle` returns: the outcome itself when no I/O is needed, a
#: :class:`SessionLookup` when one store call decides, else a flow that ends in the outcome.
Plan = Union[Forward, Respond, _Drop, Flow[Outcome]]


def log_failure(action: str, error: WxError, subject: str = "") -> None:
    """One log line per failed login/logout/store access, naming its cause, never a secret.

    The record carries ``extra`` fields for JSON log formatters: ``event`` (``action``),
    ``error`` (the error word), ``status``, ``errcode`` (WeChat's, or ``None``) and
    ``subject`` (``code=<hash>`` or a session's short hash, or ``""``).
    """
    # A misconfiguration or an unusable WeChat needs the operator; a busy one, attention;
    # a bad client request, a record.
    if error.status in (500, 502):
        level = logging.ERROR
    elif error.status >= 500:
        level = logging.WARNING
    else:
        level = logging.INFO
    logger.log(
        level,
        "%s failed: %s %s%s%s%s",
        action,
        error.status,
        error.error,
        f" errcode={error.errcode}" if error.errcode is not None else "",
        f" ({error.detail})" if error.detail else "",
        f" {subject}" if subject else "",
        extra={
            "event": action,
            "error": error.error,
            "status": error.status,
            "errcode": error.errcode,
            "subject": subject,
        },
    )


def resolve_config(config: Optional[WxConfig], options: Mapping[str, Any]) -> WxConfig:
    """The middleware's configuration from ``config=`` and/or keyword options."""
    if config is None:
        return WxConfig.from_options(**options)
    return config.with_options(**options) if options else config


class Pipeline:
    """Every decision about a request, for one configuration.

    ``has_login_hook`` says whether the app gave an ``on_login`` hook (then the flow yields
    :class:`~._effects.CallHook` after each login); ``events`` names the other hooks it gave
    (``"logout"``, ``"reject"``: the flows yield :class:`~._effects.Notify` for them);
    ``observer`` (:class:`~wxmiddleware.observe.Observer`) is told every request's outcome,
    every rejection's reason and every login's. ``header_key`` turns a normalised header
    name (``3rd-session``) into a key of the adapter's :class:`~._request.HeaderMap`;
    :attr:`header_names` and :attr:`cors` (:meth:`~._cors.Cors.header_keys`) hold the
    results.

    Two rules hold for every answer the middleware gives itself (:meth:`respond`): under a
    CORS policy it carries the policy's headers (:mod:`._cors`), and to ``HEAD`` it has the
    status and headers of the ``GET`` answer and no body. A CORS preflight is never refused:
    the policy answers it on the login and logout paths, the app everywhere else.
    """

    def __init__(
        self,
        config: WxConfig,
        has_login_hook: bool = False,
        header_key: Optional[Callable[[str], str]] = None,
        *,
        events: Collection[str] = (),
        observer: Optional[Observer] = None,
    ) -> None:
        self.config = config
        self.has_login_hook = has_login_hook
        self.observer = observer
        self._on_reject = "reject" in events
        self._on_logout = "logout" in events
        lookup = SessionLookup if observer is None else ObservedLookup
        self._lookup: Callable[..., Plan] = lookup
        #: The login rate limits, or ``None`` when there are none.
        self.limits = LoginLimits.for_config(config, header_key)
        self.router = Router(config)
        self.header_names = HeaderNames.for_config(config, header_key)
        self.cors = Cors(config, header_key)
        # Looked up once here rather than on every request.
        self.idle_ttl = config.session_ttl
        #: The app's sessions in the store: its appid, sealing keys and per-user cap.
        self.scope = SessionScope.for_config(config)
        #: Which app a request is for, when the configuration serves several (else ``None``:
        #: every request is the one app's, and no header is read for it).
        self.apps = AppSelector(config, self.header_names) if config.multi_app else None
        if self.apps is not None:
            self._lookup = _app_lookup(lookup, self.apps)
        self._classify = self.router.classify
        self._token_keys = self.header_names.tokens

    def handle(self, view: RequestView) -> Plan:
        """Decide what the request needs; run the plan with a performer's ``run_request``."""
        kind = self._classify(view.path, view.raw_path)
        if kind is _PUBLIC:
            if self.observer is not None:
                self.observer.request(PUBLIC)
            return _UNTOUCHED
        if view.method == "OPTIONS" and self.cors.is_preflight(view.headers):
            return self._preflight(view, kind)
        if kind is not _PROTECTED and kind is not _OPTIONAL:
            # The login and logout paths, or a near miss of one.
            if not view.websocket:
                if kind is _LOGIN or kind is _LOGOUT:
                    return self._answer(view, kind)
                return self.failure(view, kind, near_miss_error(kind, self.config), BAD_REQUEST)
            # Login and logout are HTTP requests; a websocket there needs a session.
            kind = _PROTECTED
        try:
            token = self._token(view.headers)
        except Exception as error:
            return self.failure(view, kind, error, INVALID)
        if token is not None:
            return self._lookup(self, view, kind, token)
        if kind is _OPTIONAL:
            if self.observer is not None:
                self.observer.request(ANONYMOUS)
            return _ANONYMOUS
        # A fresh error each time: a shared one's traceback grows with every raise.
        return self.failure(view, kind, missing_token_error(self.config), MISSING)

    def failure(
        self,
        view: RequestView,
        kind: RequestKind,
        error: Exception,
        reason: Optional[str] = None,
        token: Optional[str] = None,
    ) -> Plan:
        """The plan of a request that failed with ``error``: every error is shaped here.

        A :class:`~wxmiddleware.errors.WxError` answers its JSON (in Wafer's dialect when the
        request speaks it); any other exception is a fault of ours (a bug, or the app's
        ``on_login`` hook failing), logged at ERROR with its traceback and answered ``500``
        without one; a client gone before its body is dropped.

        With a ``reason`` (:mod:`wxmiddleware.observe`: ``missing``, ``expired``…) the
        request is a rejection: the observer hears of it, a DEBUG record with ``extra``
        fields (``event``, ``reason``, ``status``, ``session_hash`` when ``token`` is given)
        is logged, and with an ``on_reject`` hook the plan is a flow that calls it first.
        """
        outcome = self._shape(view, kind, error)
        if reason is None or type(outcome) is not Respond:
            return outcome
        return self._rejected(outcome, reason, token)

    def _rejected(self, outcome: Respond, reason: str, token: Optional[str]) -> Plan:
        status = outcome.response.status
        if logger.isEnabledFor(logging.DEBUG):
            session_hash = None if token is None else short_hash(token_key(token))
            logger.debug(
                "rejected: %s (%d)%s",
                reason,
                status,
                f" session {session_hash}" if session_hash else "",
                extra={
                    "event": "reject",
                    "reason": reason,
                    "status": status,
                    "session_hash": session_hash,
                },
            )
        if self.observer is not None:
            self.observer.rejected(reason, status)
        if self._on_reject:
            return self._notify_then(outcome, "reject", reason)
        return outcome

    def _notify_then(self, outcome: Outcome, event: str, subject: Any) -> Flow[Outcome]:
        yield from self._notify(event, subject)
        return outcome

    def _notify(self, event: str, subject: Any) -> Flow[None]:
        try:
            yield Notify(event, subject)
        except Exception as error:  # the hook's failure changes no answer
            logger.error("on_%s hook failed: %s", event, type(error).__name__, exc_info=error)

    def _shape(self, view: RequestView, kind: RequestKind, error: Exception) -> Outcome:
        if isinstance(error, ClientDisconnected):
            logger.debug("login: the client disconnected before sending its body")
            return DROP
        if not isinstance(error, WxError):
            # exc_info=error rather than logger.exception(): the traceback is error's own,
            # whether or not this runs inside the except clause that caught it.
            logger.error("internal error: %s", type(error).__name__, exc_info=error)
            error = WxError()
        wafer = wafer_error(self.config, kind, error, view.headers, self.header_names)
        return self.respond(view, error_response(error, wafer))

    def respond(self, view: RequestView, response: Response) -> Respond:
        """The outcome that answers ``view`` with ``response``, one of the middleware's own:
        with the CORS policy's headers when one is set, and without a body to ``HEAD``."""
        cors = self.cors
        if cors.active:
            response = cors.decorate(response, view.headers)
        if view.method == "HEAD":
            response = head_response(response)
        return Respond(response)

    def _preflight(self, view: RequestView, kind: RequestKind) -> Outcome:
        # Browsers send a preflight without credentials (Fetch, section 4.8), so requiring a
        # token would refuse the real request too. The app's CORS layer answers it, with no
        # session attached; the policy answers for the middleware's own paths.
        if self.observer is not None:
            self.observer.request(PREFLIGHT)
        if kind is _PROTECTED or kind is _OPTIONAL or not self.cors.active:
            return _ANONYMOUS
        return Respond(self.cors.preflight_response(kind, view.headers))

    def _answer(self, view: RequestView, kind: RequestKind) -> Flow[Outcome]:
        observer = self.observer
        activity = None
        if observer is not None and kind is _LOGIN:
            activity = observer.login_started()
        ended: Dict[str, Any] = {}
        failed: Optional[BaseException] = None
        try:
            if kind is _LOGIN:
                response = yield from self._login(view, ended)
            else:
                response = yield from self._logout(view)
        except Exception as error:
            failed = error
            reason = _refusal_reason(kind, error)
            if kind is _LOGIN:
                self._login_ended(ended, error)
            plan = self.failure(view, kind, error, reason)
            if type(plan) is GeneratorType:
                outcome: Outcome = yield from cast("Flow[Outcome]", plan)
                return outcome
            return cast(Outcome, plan)
        except BaseException as error:  # cancelled (asyncio) or closed: the login ends too
            failed = error
            raise
        finally:
            if activity is not None:
                activity.end(failed, ended)
        if kind is _LOGIN:
            self._login_ended(ended, None)
        return self.respond(view, response)

    def _login_ended(self, ended: Dict[str, Any], error: Optional[Exception]) -> None:
        """Note how a login ended in ``ended`` (``outcome``, ``errcode``; ``error``, when
        given, overrides what the flow noted) and tell the observer."""
        if error is not None:
            ended["outcome"] = error.error if isinstance(error, WxError) else "internal_error"
            ended["errcode"] = error.errcode if isinstance(error, WxError) else None
        if self.observer is not None:
            self.observer.login(ended["outcome"], ended.get("errcode"))

    def _token(self, headers: HeaderMap) -> Optional[str]:
        values = []
        for key in self._token_keys:
            value = headers.get(key)
            if value is not None:
                values.append(value)
        return pick_token(values) if values else None

    def _read_body(self, view: RequestView) -> Flow[bytes]:
        config = self.config
        names = self.header_names
        length = body_length(view.headers.get(names.content_length), config)
        if length == 0:
            return b""
        if length is None and not view.body_framed:
            if view.headers.get(names.transfer_encoding):
                raise BadRequest("Send the login body with a Content-Length.")
            return b""
        try:
            body: bytes = yield ReadBody(length, config.max_body_bytes)
        except (OSError, ValueError):
            raise BadRequest("The login body could not be read.") from None
        # A chunked body has no length to check up front: the reader stops past the limit.
        if len(body) > config.max_body_bytes:
            raise body_too_large(config)
        return body

    def _login(self, view: RequestView, ended: Dict[str, Any]) -> Flow[Response]:
        config = self.config
        wafer = wafer_login(config, view.headers, self.header_names)
        check_login_method(view.method, config, wafer is not None)
        # The app's own configuration (appid, secret): before the body, the limits, WeChat.
        app = config if self.apps is None else self.apps.select(view.headers).config
        if self.limits is not None:
            # Before the body is read: a flood of logins costs no WeChat call, no write.
            yield from self.limits.check(view)
        # A code from a URL sits in access logs: it gets no idempotent replay.
        in_url = wafer is None and view.method == "GET"
        anonymous_code = None
        if wafer is not None:
            code = wafer.code
        elif in_url:
            code = login_code_from_query(view.query)
        else:
            body = yield from self._read_body(view)
            content_type = view.headers.get(self.header_names.content_type)
            code, anonymous_code = login_from_body(content_type, body)
        subject = f"code={short_hash(code_key(code))}"
        try:
            token, session, fresh = yield from login_flow(
                code, app, replayable=not in_url, anonymous_code=anonymous_code
            )
            # Undecryptable user info keeps the session: the same code with data that
            # decrypts (wx.getUserInfo called again) gets it.
            userinfo = None if wafer is None else wafer_userinfo(wafer, session, app)
        except WxError as error:
            log_failure("login", error, subject)
            raise
        session_hash = short_hash(token_key(token))
        ended["outcome"] = "success" if fresh else "replay"
        logger.info(
            "login: session %s",
            session_hash,
            extra={"event": "login", "outcome": ended["outcome"], "session_hash": session_hash},
        )
        extra = None
        if self.has_login_hook:
            try:
                extra = yield CallHook(session, userinfo)
            except Exception:
                if fresh:
                    # The hook failed, the client gets a 500 and no token: the session this
                    # login made must not outlive it (a retry of the code: invalid_code).
                    yield from self._end_session(token)
                raise
        if userinfo is None:
            return login_response(token, session, config, extra)
        return wafer_login_response(token, userinfo, extra)

    def _end_session(self, token: str) -> Flow[None]:
        try:
            yield StoreCall("delete", (token,))
        except Exception as error:  # the login's own failure is the one to answer
            logger.warning(
                "login: session %s could not be ended after the login failed (%s)",
                short_hash(token_key(token)),
                type(error).__name__,
            )

    def _logout(self, view: RequestView) -> Flow[Response]:
        check_logout_method(view.method)
        try:
            token = self._token(view.headers)
        except WxError as error:
            raise _Refusal(error, INVALID) from None
        if token is None:
            raise _Refusal(missing_token_error(self.config), MISSING)
        session_hash = short_hash(token_key(token))
        session = None
        scope = self.scope
        if self.apps is not None:
            try:
                scope = self.apps.select(view.headers).scope
            except WxError as error:
                raise _Refusal(error, BAD_REQUEST) from None
        try:
            if self._on_logout or self.apps is not None:
                # The hook is told whose session ended; another app's token ends nothing.
                session = yield StoreCall("get", (token, self.idle_ttl, scope))
            ended = False
            if session is not None or self.apps is None:
                ended = yield StoreCall("delete", (token,))
        except WxError as error:
            log_failure("logout", error, session_hash)
            raise
        if self.observer is not None:
            self.observer.logout(bool(ended))
        if ended:
            logger.info(
                "logout: session %s",
                session_hash,
                extra={"event": "logout", "session_hash": session_hash},
            )
            if session is not None and self._on_logout:
                yield from self._notify("logout", session)
        return logout_response()


def _app_lookup(lookup: Type[SessionLookup], apps: AppSelector) -> Callable[..., Plan]:
    """``lookup`` (a :class:`SessionLookup` class) in the scope of the request's app: a
    token is looked up only among its app's sessions; a request that names no app, or a
    malformed one, is a ``400``."""

    def app_lookup(pipeline: Pipeline, view: RequestView, kind: RequestKind, token: str) -> Plan:
        try:
            scope = apps.select(view.headers).scope
        except WxError as error:
            return pipeline.failure(view, kind, error, BAD_REQUEST, token)
        plan = lookup(pipeline, view, kind, token)
        plan.scope = scope
        return plan

    return app_lookup


class _Refusal(WxError):
    """A login or logout refused for a :mod:`wxmiddleware.observe` reason: it answers as
    ``error`` does (its status, word, message and headers)."""

    def __init__(self, error: WxError, reason: str) -> None:
        super().__init__(error.message, errcode=error.errcode, headers=error.headers)
        self.status = error.status  # type: ignore[misc]
        self.error = error.error  # type: ignore[misc]
        self.reason = reason


def _refusal_reason(kind: RequestKind, error: Exception) -> Optional[str]:
    """The rejection reason of a failed login or logout, or ``None`` when it is not one (a
    login WeChat refused is a login outcome, not a rejection)."""
    if isinstance(error, _Refusal):
        return error.reason
    if isinstance(error, LoginRateLimited):
        return RATE_LIMITED
    if kind is _LOGOUT and isinstance(error, WxError):
        return STORE_DOWN if isinstance(error, StoreUnavailable) else BAD_REQUEST
    return None
