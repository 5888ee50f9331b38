"""What a request comes to: the outcomes and the plans that reach them.

:meth:`~._pipeline.Pipeline.handle` returns a plan: the outcome itself when no I/O is
needed, a :class:`SessionLookup` (the one store call most requests need, and what its
result decides), or a flow of effects (:mod:`._effects`). Every plan ends in an outcome:
:class:`Forward` the request to the app (with its session), :class:`Respond` with an
answer, or :data:`DROP` it (the client is gone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional, Type, Union

from ..errors import InvalidSession, WxError
from ..observe import ANONYMOUS, AUTHENTICATED, BAD_REQUEST, EXPIRED, STORE_DOWN, Observer
from ..session import WxSession, short_hash, token_key
from ._effects import Flow
from ._responses import Response, log_failure
from ._routing import RequestKind
from ._view import RequestView

if TYPE_CHECKING:
    from ._apps import AppSelector
    from ._pipeline import Pipeline

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
#: A public path: the app gets the request untouched.
UNTOUCHED = Forward(None, attach=False)
#: An optional path without a token: forwarded with no session.
ANONYMOUS_FORWARD = Forward(None)

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


def app_lookup(lookup: Type[SessionLookup], apps: AppSelector) -> Callable[..., Plan]:
    """``lookup`` (a :class:`SessionLookup` class) in the scope of the request's app: a
    token is looked up only among its app's sessions; a request that names no app, or a
    malformed one, is a ``400``."""

    def app_lookup(pipeline: Pipeline, view: RequestView, kind: RequestKind, token: str) -> Plan:
        try:
            scope = apps.select(view.lookup_headers).scope
        except WxError as error:
            return pipeline.failure(view, kind, error, BAD_REQUEST, token)
        plan = lookup(pipeline, view, kind, token)
        plan.scope = scope
        return plan

    return app_lookup
