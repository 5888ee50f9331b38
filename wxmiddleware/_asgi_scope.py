"""The ASGI side's translation: headers in, the scope the app receives, answers out.

:class:`ScopeHeaders` turns a scope's raw headers into the core's header map;
:func:`with_session` makes the scope the app receives; :func:`read_body` reads a login's
body; :func:`send_response` sends the core's :class:`~wxmiddleware.core.Response` (or
refuses a websocket with its close code).
``scope["user"]`` and ``scope["auth"]`` take Starlette's shape: its
``AuthenticationMiddleware`` puts a ``BaseUser`` and ``AuthCredentials`` there, and
``request.user``, ``request.auth`` and ``requires("authenticated")`` read them. These two
classes have the same attributes without importing Starlette.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Tuple

from .core import ClientDisconnected, HeaderNames, Pipeline, Response
from .session import WxSession

if TYPE_CHECKING:
    from asgiref.typing import (
        ASGIReceiveCallable,
        ASGISendCallable,
        HTTPResponseBodyEvent,
        HTTPResponseStartEvent,
        WebSocketCloseEvent,
    )

__all__ = [
    "ScopeHeaders",
    "WxCredentials",
    "WxUser",
    "client_host",
    "read_body",
    "send_response",
    "with_session",
]


class WxUser:
    """``scope["user"]``: the WeChat user, as Starlette's ``request.user`` expects one.

    It has the attributes of Starlette's ``BaseUser`` (``is_authenticated``,
    ``display_name``, ``identity``), plus ``openid``, ``unionid``, ``appid``, ``platform`` and
    ``session``. On an
    optional path without a valid session it is anonymous: ``is_authenticated`` is
    ``False``, ``identity`` and ``display_name`` are ``""``, the rest ``None``.
    """

    __slots__ = ("session",)

    def __init__(self, session: Optional[WxSession]) -> None:
        self.session = session

    def __repr__(self) -> str:
        return f"WxUser(openid={self.openid!r})"

    @property
    def is_authenticated(self) -> bool:
        """Whether the request carries a valid session."""
        return self.session is not None

    @property
    def openid(self) -> Optional[str]:
        """The user's openid in this mini-program."""
        return None if self.session is None else self.session.openid

    @property
    def unionid(self) -> Optional[str]:
        """The unionid, when the mini-program is bound to an open-platform account."""
        return None if self.session is None else self.session.unionid

    @property
    def appid(self) -> Optional[str]:
        """The appid of the mini-program the session belongs to."""
        return None if self.session is None else self.session.appid

    @property
    def platform(self) -> Optional[str]:
        """The mini-program platform of the session (``"wechat"``, ``"douyin"``, …)."""
        return None if self.session is None else self.session.platform

    @property
    def identity(self) -> str:
        """The openid (``""`` when anonymous)."""
        return "" if self.session is None else self.session.openid

    @property
    def display_name(self) -> str:
        """The openid too: a login tells nothing more presentable about the user."""
        return self.identity


class WxCredentials:
    """``scope["auth"]``: ``scopes`` is ``["authenticated"]`` with a session, else empty.

    Starlette's ``requires("authenticated")`` checks it.
    """

    __slots__ = ("scopes",)

    def __init__(self, scopes: Iterable[str] = ()) -> None:
        self.scopes = list(scopes)

    def __repr__(self) -> str:
        return f"WxCredentials({self.scopes!r})"


def with_session(scope: Dict[str, Any], session: Optional[WxSession]) -> Dict[str, Any]:
    """A copy of ``scope`` with the session's keys, ``user`` and ``auth`` (the README's
    "What your app sees"); ``session`` is ``None`` on an optional path without one."""
    # A copy: the ASGI spec asks middleware to leave the scope it was given unchanged.
    # copy() and item assignment cost half what a {**scope, ...} literal does.
    attached = scope.copy()
    if session is None:
        attached["wxmiddleware.session"] = None
        attached["wxmiddleware.openid"] = None
        attached["wxmiddleware.session_key"] = None
        attached["wxmiddleware.unionid"] = None
        attached["wxmiddleware.appid"] = None
        attached["wxmiddleware.platform"] = None
        attached["user"] = WxUser(None)
        attached["auth"] = WxCredentials([])
        return attached
    attached["wxmiddleware.session"] = session
    attached["wxmiddleware.openid"] = session.openid
    attached["wxmiddleware.session_key"] = session.session_key
    attached["wxmiddleware.unionid"] = session.unionid
    attached["wxmiddleware.appid"] = session.appid
    attached["wxmiddleware.platform"] = session.platform
    attached["user"] = WxUser(session)
    attached["auth"] = WxCredentials(["authenticated"])
    return attached


def _spellings(key: str) -> List[str]:
    """``key`` with each of its hyphens also written as an underscore."""
    spellings = [""]
    for index, part in enumerate(key.split("-")):
        joints = ("",) if index == 0 else ("-", "_")
        spellings = [done + joint + part for done in spellings for joint in joints]
    return spellings


class ScopeHeaders:
    """Reads the headers the core asks for out of a scope's raw ``headers`` list.

    Built once at start-up from the pipeline's :class:`~wxmiddleware.core.HeaderNames` and
    any ``more`` keys (the CORS headers the pipeline reads), it knows each key under every
    lower-case spelling it may arrive in: the token, Wafer and CORS headers with each ``-``
    also as ``_`` (``x-wx-skey``, ``x_wx_skey``…), repeats joined with commas as WSGI servers
    join them; the framing headers only by their real names, the first value winning (see
    :class:`~wxmiddleware.core.HeaderMap`). ``exact`` keys are read only by their real names
    with repeats joined (``x-forwarded-for``: a client's ``x_forwarded_for`` must not stand
    in for what a proxy wrote). Most headers are ruled out by their length alone.

    :meth:`read` builds the whole map; :meth:`read_lookup` only the lookup headers
    (:meth:`~wxmiddleware.core.HeaderNames.lookup_keys`), which is all an authenticated
    request reads: with fewer lengths to match, most of a request's headers are passed over
    at once.
    """

    @classmethod
    def for_pipeline(cls, pipeline: Pipeline) -> ScopeHeaders:
        """The reader of every header ``pipeline`` reads: its names, its CORS policy's and
        its login rate limits' (``X-Forwarded-For`` behind ``trusted_proxies``)."""
        limits = () if pipeline.limits is None else pipeline.limits.header_keys()
        return cls(pipeline.header_names, pipeline.cors.header_keys(), limits)

    def __init__(
        self, names: HeaderNames, more: Iterable[str] = (), exact: Iterable[str] = ()
    ) -> None:
        spellings: Dict[bytes, Tuple[str, bool]] = {
            spelling.encode("latin-1"): (key, True)
            for key in (*names.joined_keys(), *more)
            for spelling in _spellings(key)
        }
        for key in names.framing_keys():
            spellings[key.encode("latin-1")] = (key, False)
        for key in exact:
            spellings[key.encode("latin-1")] = (key, True)
        lookup = names.lookup_keys()
        self.read = _SpellingReader(spellings).read
        self.read_lookup = _SpellingReader(
            {name: entry for name, entry in spellings.items() if entry[0] in lookup}
        ).read


class _SpellingReader:
    """The header map of the keys in ``spellings`` (raw name -> (key, repeats joined))."""

    def __init__(self, spellings: Dict[bytes, Tuple[str, bool]]) -> None:
        self._spellings = spellings
        self._lengths = frozenset(len(name) for name in spellings)

    def read(self, raw: Iterable[Tuple[bytes, bytes]]) -> Dict[str, str]:
        """The header map of one request: normalised key -> value (Latin-1 text)."""
        found: Dict[str, str] = {}
        spellings, lengths = self._spellings, self._lengths
        for name, value in raw:
            if len(name) not in lengths:
                continue
            entry = spellings.get(name)
            if entry is None:
                # The spec asks servers for lower-case names; compare any other in lower case.
                if name.islower():
                    continue
                entry = spellings.get(name.lower())
                if entry is None:
                    continue
            key, joined = entry
            if key not in found:
                found[key] = value.decode("latin-1")
            elif joined:
                found[key] += "," + value.decode("latin-1")
        return found


async def send_response(
    response: Response, websocket: bool, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    """Send ``response`` as ``http.response.start`` and ``http.response.body``; for a
    websocket, close it with the response's close code instead."""
    if not websocket:
        headers = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in response.headers]
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": response.status,
            "headers": headers,
            "trailers": False,
        }
        await send(start)
        body: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": response.body,
            "more_body": False,
        }
        await send(body)
    elif (await receive())["type"] == "websocket.connect":
        # Sent before any accept, the close answers the handshake (servers: HTTP 403).
        close: WebSocketCloseEvent = {
            "type": "websocket.close",
            "code": response.close_code,
            "reason": None,
        }
        await send(close)


async def read_body(context: Tuple[Any, ...], length: Optional[int], limit: int) -> bytes:
    """The request body from ``context``'s ``receive`` (``(scope, receive, ...)``): its
    ``http.request`` messages joined, read until the last one or until more than ``limit``
    bytes have come (``length``, the declared ``Content-Length``, is already checked by the
    core). Raises :class:`~wxmiddleware.core.ClientDisconnected` on ``http.disconnect``."""
    receive = context[1]
    chunks: List[bytes] = []
    size = 0
    more_body = True
    while more_body and size <= limit:
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more_body = message.get("more_body", False)
    return b"".join(chunks)


def client_host(client: Optional[Tuple[str, int]]) -> Optional[str]:
    """The host of ``scope["client"]`` (``(host, port)``), or ``None`` when the server does
    not say."""
    return None if not client else client[0]
