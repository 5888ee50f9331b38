"""The request pipeline: every request, from the view to an outcome, decided here.

:meth:`Pipeline.handle` classifies the request, picks the token, authenticates, answers a
preflight, hands the login and logout paths to their flows (:mod:`._endpoints`), and
shapes every error (Wafer's dialect included) in :meth:`Pipeline.failure`. What it returns
is a plan (:mod:`._outcomes`) that ends in an outcome. The adapters build the view, run the
plan with a performer and translate the outcome; they decide nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Collection, List, Mapping, Optional, Union

from ..config import WxConfig
from ..errors import WxError
from ..observe import ANONYMOUS, BAD_REQUEST, INVALID, MISSING, PREFLIGHT, PUBLIC, Observer
from ..session import SessionScope, short_hash, token_key
from ._apps import AppSelector
from ._cors import Cors
from ._effects import ClientDisconnected, Flow, Notify
from ._endpoints import answer
from ._limits import LoginLimits
from ._outcomes import (
    ANONYMOUS_FORWARD,
    DROP,
    UNTOUCHED,
    ObservedLookup,
    Outcome,
    Plan,
    Respond,
    SessionLookup,
)
from ._request import is_token, missing_token_error, pick_token
from ._responses import Response, error_response, head_response
from ._routing import RequestKind, Router, near_miss_error
from ._view import HeaderMap, HeaderNames, RequestView
from ._wafer import wafer_error

logger = logging.getLogger("wxmiddleware")
_new = object.__new__

# Module constants: an enum member read through its class costs tens of nanoseconds, and
# every request compares its kind several times.
_LOGIN = RequestKind.LOGIN
_LOGOUT = RequestKind.LOGOUT
_PUBLIC = RequestKind.PUBLIC
_OPTIONAL = RequestKind.OPTIONAL
_PROTECTED = RequestKind.PROTECTED


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
        view_of: Optional[Callable[[Any], RequestView]] = None,
    ) -> None:
        self.config = config
        self.has_login_hook = has_login_hook
        self.observer = observer
        self._on_reject = "reject" in events
        #: Whether the app gave an ``on_logout`` hook.
        self.on_logout = "logout" in events
        self._lookup_class = SessionLookup if observer is None else ObservedLookup
        #: ``view_of(request)``: the adapter's request as a :class:`~._view.RequestView`.
        self.view_of: Callable[[Any], RequestView] = view_of or _is_view
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
        self._classify = self.router.classify
        self._token_keys = self.header_names.tokens

    def handle(
        self,
        request: Any,
        method: str,
        path: str,
        raw_path: Union[str, bytes, None],
        headers: HeaderMap,
    ) -> Plan:
        """Decide what ``request`` needs; run the plan with a performer's ``run_request``.

        ``request`` is the adapter's own (the WSGI environ, the ASGI scope...): an
        authenticated request is decided from the four facts beside it, its ``method``,
        ``path`` and ``raw_path`` (as :class:`~._view.RequestView` has them) and its lookup
        ``headers`` (:attr:`~._view.RequestView.lookup_headers`); only a request that needs
        more (a login or logout, a preflight, a refusal) is seen whole, as
        ``view_of(request)``. Most requests of an app then build no view at all.
        """
        kind = self._classify(path, raw_path)
        if kind is _PUBLIC:
            if self.observer is not None:
                self.observer.request(PUBLIC)
            return UNTOUCHED
        if method == "OPTIONS" or (kind is not _PROTECTED and kind is not _OPTIONAL):
            plan = self._before_session(self.view_of(request), kind)
            if plan is not None:
                return plan
            if kind is not _OPTIONAL:
                # Login and logout are HTTP requests; a websocket there needs a session.
                kind = _PROTECTED
        try:
            token = self.token(headers)
        except Exception as error:
            return self.failure(self.view_of(request), kind, error, INVALID)
        if token is None:
            if kind is _OPTIONAL:
                if self.observer is not None:
                    self.observer.request(ANONYMOUS)
                return ANONYMOUS_FORWARD
            # A fresh error each time: a shared one's traceback grows with every raise.
            missing = missing_token_error(self.config)
            return self.failure(self.view_of(request), kind, missing, MISSING)
        # Built without __init__: a Python call per request costs more than these stores.
        lookup: SessionLookup = _new(self._lookup_class)
        lookup.token = token
        lookup.idle_ttl = self.idle_ttl
        lookup.kind = kind
        lookup.request = request
        lookup.pipeline = self
        if self.apps is None:
            lookup.scope = self.scope
            return lookup
        # A token is looked up only among its app's sessions; a request that names no app,
        # or a malformed one, is a 400.
        try:
            lookup.scope = self.apps.select(headers).scope
        except WxError as error:
            return self.failure(self.view_of(request), kind, error, BAD_REQUEST, token)
        return lookup

    def _before_session(self, view: RequestView, kind: RequestKind) -> Optional[Plan]:
        """The plan of a request decided before any session: a preflight, the login and
        logout paths and their near misses; ``None`` when it needs its session."""
        if view.method == "OPTIONS" and self.cors.is_preflight(view.headers):
            return self._preflight(view, kind)
        if kind is _PROTECTED or kind is _OPTIONAL or view.websocket:
            return None
        if kind is _LOGIN or kind is _LOGOUT:
            return answer(self, view, kind)
        return self.failure(view, kind, near_miss_error(kind, self.config), BAD_REQUEST)

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
        yield from self.notify(event, subject)
        return outcome

    def notify(self, event: str, subject: Any) -> Flow[None]:
        """Yield :class:`~._effects.Notify` for ``event``; a failing hook is logged, never
        answered."""
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
            return ANONYMOUS_FORWARD
        return Respond(self.cors.preflight_response(kind, view.headers))

    def token(self, headers: HeaderMap) -> Optional[str]:
        """The request's session token, or ``None`` without one (:func:`~._request.pick_token`
        says which errors a conflicting or malformed one raises)."""
        values: List[str] = []
        for key in self._token_keys:
            value = headers.get(key)
            if value is not None:
                values.append(value)
        if len(values) == 1 and is_token(values[0]):
            return values[0]  # the usual request, accepted without another call
        return pick_token(values) if values else None


def _is_view(request: Any) -> RequestView:
    """The ``view_of`` of an adapter that passes its :class:`~._view.RequestView` as the
    request."""
    view: RequestView = request
    return view
