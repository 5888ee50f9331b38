"""The one effect vocabulary: what a flow asks its performer to do.

Every flow of the package (a request through the middleware, a login, the shared access
token, a server-API call) is a generator that yields these effects and receives each one's
result (or has the performer's exception thrown into it). Exactly two performers carry them
out: :class:`wxmiddleware._perform.SyncPerformer` and its async twin.
Effects are named tuples, but for :class:`StoreCall`, a slotted class: the cheapest to make.
"""

from __future__ import annotations

from typing import Any, Callable, Generator, Mapping, NamedTuple, Optional, Tuple, TypeVar, Union

from ..session import WxSession

_T = TypeVar("_T")


class StoreCall:
    """Call ``store.<op>(*args)`` on the session store; send back its result.

    ``op`` is a method of the store protocol (:class:`wxmiddleware.stores.base.SessionStore`),
    e.g. ``"get"``, ``"claim_code"``, ``"set_value"``. A slotted class rather than a named
    tuple like the others: every authenticated request makes one, and this is the cheapest.
    """

    __slots__ = ("args", "op")

    def __init__(self, op: str, args: Tuple[Any, ...]) -> None:
        self.op = op
        self.args = args

    def __eq__(self, other: object) -> bool:
        return type(other) is StoreCall and (self.op, self.args) == (other.op, other.args)

    def __hash__(self) -> int:
        return hash((self.op, self.args))

    def __repr__(self) -> str:
        # The arguments may hold a token or a sealed token.
        return f"StoreCall({self.op!r})"


class HttpCall(NamedTuple):
    """One HTTP exchange with WeChat (or another platform's login API); send back
    ``(status, body)``, or ``(status, body, headers)`` when ``reply_headers`` names answer
    headers (below).

    ``params`` go in the query string, URL-encoded by the HTTP client (never concatenated);
    ``body``, when not ``None``, is sent as JSON; ``form``, when not ``None``, as an
    ``application/x-www-form-urlencoded`` body (never both). They may hold the app secret,
    a code or an access token, so ``repr`` shows none of them.
    """

    method: str
    url: str
    params: Mapping[str, str]
    body: Optional[Mapping[str, Any]] = None
    form: Optional[Mapping[str, str]] = None
    #: Headers added to the request (a sealed call's ``Wechatmp-*``), or ``None``.
    headers: Optional[Mapping[str, str]] = None
    #: A body sent byte for byte instead of ``body`` (a sealed call's signature covers
    #: exactly these bytes), or ``None``.
    content: Optional[bytes] = None
    #: Lower-case names of answer headers to send back: the result is then
    #: ``(status, body, headers)``, ``headers`` mapping each name the answer has to its value.
    reply_headers: Tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"HttpCall({self.method} {self.url})"


class Sleep(NamedTuple):
    """Wait ``seconds`` without blocking other requests (``asyncio.sleep`` in a loop)."""

    seconds: float


class ReadBody(NamedTuple):
    """Read the request body; send back the bytes.

    ``length`` is the validated ``Content-Length`` (``None`` for a chunked body); the reader
    stops once it has more than ``limit`` bytes, and the flow refuses a body that long. An
    unreadable body raises ``OSError``/``ValueError``; a client gone before its body arrived
    raises :class:`ClientDisconnected`.
    """

    length: Optional[int]
    limit: int


class CallHook(NamedTuple):
    """Call the app's ``on_login`` hook; send back the mapping it returned (or ``None``).

    ``userinfo`` is the Wafer ``userinfo`` being answered, or ``None`` for other logins.
    """

    session: WxSession
    userinfo: Optional[Mapping[str, Any]]


class Notify(NamedTuple):
    """Call the app's hook for ``event`` (``"logout"``: ``on_logout``, ``"reject"``:
    ``on_reject``) with ``subject`` and the request; send back ``None``.

    ``subject`` is the ended :class:`WxSession` for a logout, the reason (a string of
    :mod:`wxmiddleware.observe`) for a rejection. An async hook is awaited.
    """

    event: str
    subject: Any


class RateCheck(NamedTuple):
    """Count one login against the login rate limits; send back ``None`` while every limit
    has room, else the seconds until the fullest one has room again.

    ``client`` is the client's address (``None``: unknown, not counted per client); the
    performer's limiter holds the limits (``login_rate_limit`` per client,
    ``app_login_rate_limit`` for the app) and their counters.
    """

    client: Optional[str]


class Invoke(NamedTuple):
    """Call ``function(*args)``, a callable the app configured (``component_token``); send
    back what it returned. The async performer awaits a result that is awaitable."""

    function: Callable[..., Any]
    args: Tuple[Any, ...]


#: Any of the effects above; performers tell them apart with ``isinstance``.
Effect = Union[StoreCall, HttpCall, Sleep, ReadBody, CallHook, Notify, RateCheck, Invoke]
#: A flow: yields effects, receives their results, returns a ``_T``.
Flow = Generator[Effect, Any, _T]


class ClientDisconnected(Exception):
    """The client went away before its request body arrived: nobody waits for an answer."""
