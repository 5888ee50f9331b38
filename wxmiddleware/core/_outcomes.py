"""What a request comes to: the outcomes and the plans that reach them.

:meth:`~._pipeline.Pipeline.handle` returns a plan: the outcome itself when no I/O is
needed, a :class:`SessionLookup` (the one store call most requests need, and what its
result decides), or a flow of effects (:mod:`._effects`). Every plan ends in an outcome:
:class:`Forward` the request to the app (with its session), :class:`Respond` with an
answer, or :data:`DROP` it (the client is gone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Union

from ..errors import InvalidSession, WxError
from ..observe import ANONYMOUS, AUTHENTICATED, EXPIRED, STORE_DOWN, Observer
from ..session import SessionScope, WxSession, short_hash, token_key
from ._effects import Flow
from ._responses import Response, log_failure
from ._routing import RequestKind

if TYPE_CHECKING:
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
    scope)``; a session found makes the lookup itself the :class:`Forward` (the performer
    sets :attr:`session`, one object per request); ``None`` goes to :meth:`found`, an
    exception to :meth:`failed`, which give the outcome. A subclass whose :meth:`found`
    does more for a found session too (:class:`ObservedLookup`) has every result handed
    to it.

    :meth:`~._pipeline.Pipeline.handle` builds it without ``__init__`` (a Python call per
    request costs more than setting the attributes): ``token``, ``idle_ttl`` (seconds),
    ``scope`` (:class:`~wxmiddleware.session.SessionScope`), ``kind``, ``request`` (the
    adapter's request, from which the pipeline builds the view of a refusal) and
    ``pipeline``.
    """

    __slots__ = ("idle_ttl", "kind", "pipeline", "request", "scope", "token")
    #: A found session is always attached (a class attribute: one store less per request).
    attach = True
    token: str
    idle_ttl: int
    scope: SessionScope
    kind: RequestKind
    request: Any
    pipeline: Pipeline

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind.value})"

    def found(self, session: Optional[WxSession]) -> Plan:
        """The plan once the store answered ``session`` (``None``: no live session): this
        lookup itself (the :class:`Forward`), or the refusal (a flow when ``on_reject`` is
        set, which the performer runs)."""
        if session is None and self.kind is _PROTECTED:
            pipeline = self.pipeline
            return pipeline.failure(
                pipeline.view_of(self.request), self.kind, InvalidSession(), EXPIRED, self.token
            )
        self.session = session
        return self

    def failed(self, error: Exception) -> Plan:
        """The plan once the store raised ``error`` (a down store answers 503)."""
        if isinstance(error, WxError):
            log_failure("session lookup", error, short_hash(token_key(self.token)))
        pipeline = self.pipeline
        view = pipeline.view_of(self.request)
        return pipeline.failure(view, self.kind, error, STORE_DOWN, self.token)


class ObservedLookup(SessionLookup):
    """A :class:`SessionLookup` that tells the pipeline's observer what it came to; used
    only when there is an observer, so that the lookup costs nothing more without one."""

    __slots__ = ()

    def found(self, session: Optional[WxSession]) -> Plan:
        plan = super().found(session)
        if plan is self:
            observer: Observer = self.pipeline.observer  # type: ignore[assignment]
            observer.request(AUTHENTICATED if session is not None else ANONYMOUS)
        return plan


#: What :meth:`Pipeline.handle` returns: the outcome itself when no I/O is needed, a
#: :class:`SessionLookup` when one store call decides, else a flow that ends in the outcome.
Plan = Union[Forward, Respond, _Drop, Flow[Outcome]]
