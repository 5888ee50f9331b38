"""WxASGIMiddleware: WeChat mini-program login for any ASGI application."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Iterable,
    List,
    Mapping,
    MutableMapping,
    Optional,
    Union,
)

from . import core
from .config import WxConfig, header_key
from .core import RequestKind
from .errors import InvalidSession, WxError
from .session import WxSession, code_key, short_hash, token_key
from .stores.aio import open_async_store
from .wechat.aio import AsyncWeChatClient

if TYPE_CHECKING:
    from .stores.base import AsyncSessionStore

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["LoginHook", "WxASGIMiddleware", "WxCredentials", "WxUser"]

logger = logging.getLogger("wxmiddleware")

#: ``on_login(session, scope)`` may return (or be a coroutine returning) extra fields for the
#: login answer.
LoginHook = Callable[
    [WxSession, "Scope"],
    Union[Optional[Mapping[str, Any]], Awaitable[Optional[Mapping[str, Any]]]],
]


class WxUser:
    """``scope["user"]``: the WeChat user, as Starlette's ``request.user`` expects one.

    It has the attributes of Starlette's ``BaseUser`` (``is_authenticated``,
    ``display_name``, ``identity``), plus ``openid``, ``unionid`` and ``session``. On an
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


class _ClientGone(Exception):
    """The client disconnected before its login body arrived: nobody waits for an answer."""


def _header_name(name: str) -> bytes:
    return header_key(name).encode("latin-1")


def _header(scope: Scope, name: bytes) -> Optional[str]:
    for key, value in scope["headers"]:
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _header_lookup(scope: Scope) -> core.HeaderLookup:
    def header(name: str) -> Optional[str]:
        wanted = _header_name(name)
        values = [
            value.decode("latin-1")
            for key, value in scope["headers"]
            if key.lower().replace(b"_", b"-") == wanted
        ]
        # Repeats joined with commas, as WSGI servers join them, so both middlewares agree.
        return ",".join(values) if values else None

    return header


def _route_path(scope: Scope) -> str:
    """The path below ``root_path``, as ``PATH_INFO`` is below ``SCRIPT_NAME`` in WSGI.

    Servers that mount the app under a prefix include it in ``path``; routing frameworks
    (Starlette, Django) strip it the same way before they route.
    """
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return path


def _raw_path(scope: Scope) -> Optional[str]:
    raw_path: Optional[bytes] = scope.get("raw_path")
    return None if raw_path is None else raw_path.decode("latin-1")


def _with_session(scope: Scope, session: Optional[WxSession]) -> Scope:
    # A copy: the ASGI spec asks middleware to leave the scope it was given unchanged.
    return {
        **scope,
        "wxmiddleware.session": session,
        "wxmiddleware.openid": None if session is None else session.openid,
        "wxmiddleware.session_key": None if session is None else session.session_key,
        "wxmiddleware.unionid": None if session is None else session.unionid,
        "user": WxUser(session),
        "auth": WxCredentials(() if session is None else ("authenticated",)),
    }


async def _send_response(send: Send, response: core.Response) -> None:
    headers = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in response.headers]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _refuse_websocket(receive: Receive, send: Send, status: int) -> None:
    # The close answers the client's connect message; sent before any accept, servers turn
    # it into an HTTP 403 answer to the handshake.
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 4000 + status})


class WxASGIMiddleware:
    """Wrap an ASGI app with WeChat mini-program login.

    The middleware answers the login path (``POST /wx/login``) and the logout path
    (``POST /wx/logout``) itself. Every other HTTP request and websocket must carry a session
    token in the ``3rd-session`` header (``3rd_session`` and ``X-WX-Skey`` work too) unless
    its path is public or optional. An HTTP request without a valid one is answered ``401``
    JSON; a websocket is closed with code ``4401`` before the app sees it (servers answer the
    handshake with HTTP ``403``; other refusals close with ``4000 + status``). Browsers
    cannot set headers on a websocket, but ``wx.connectSocket`` can (its ``header`` option).

    For an accepted request or websocket, the app receives a copy of the scope with:

    - ``wxmiddleware.session``: the :class:`~wxmiddleware.WxSession` (``None`` on an optional
      path without a valid token)
    - ``wxmiddleware.openid``, ``wxmiddleware.session_key``, ``wxmiddleware.unionid``
    - ``user``: a :class:`WxUser` (Starlette's ``request.user``: ``is_authenticated``,
      ``display_name``, ``identity``, which is the openid)
    - ``auth``: a :class:`WxCredentials` whose ``scopes`` are ``["authenticated"]`` with a
      session, so Starlette's ``requires("authenticated")`` works

    A public path gets the scope untouched; ``lifespan`` and other scope types pass through.
    ``session_key`` is for server-side use (decrypting user data); never send it to a client.

    With ``wafer_compat`` (the default), clients of Tencent's Wafer SDK work unchanged: a
    login with its code in ``X-WX-Code`` (``GET`` or ``POST``) is answered
    ``{"code": 0, "data": {"skey": ..., "userinfo": {...}}}``, its errors carry
    ``"code": -1``, and so does a ``401`` to a request that sent ``X-WX-Skey``.

    .. code-block:: python

        app = WxASGIMiddleware(starlette_app, config=WxConfig.from_env())
        # or, in FastAPI: app.add_middleware(WxASGIMiddleware, appid="wx...", secret="...")

    :param app: the ASGI application to wrap.
    :param config: a :class:`~wxmiddleware.WxConfig`; keyword ``options`` override its fields
        (or build one when ``config`` is omitted).
    :param store: an asynchronous session store; by default the one ``config.store`` names,
        else SQLite (see :func:`~wxmiddleware.stores.aio.open_async_store`).
    :param wechat: the WeChat client; by default an
        :class:`~wxmiddleware.wechat.aio.AsyncWeChatClient`.
    :param on_login: called with the session and the scope after each successful login (a
        plain function or a coroutine function); the mapping it returns is added to the
        login answer. For a Wafer login, the scope it gets (a copy) has
        ``"wxmiddleware.userinfo"``: the ``userinfo`` being answered (the decrypted user
        info, when the client sent it).
    """

    def __init__(
        self,
        app: ASGIApp,
        config: Optional[WxConfig] = None,
        *,
        store: Optional[AsyncSessionStore] = None,
        wechat: Optional[AsyncWeChatClient] = None,
        on_login: Optional[LoginHook] = None,
        **options: Any,
    ) -> None:
        self.app = app
        self.config = core.resolve_config(config, options)
        self.store = (
            store if store is not None else open_async_store(self.config.store, self.config.appid)
        )
        self.wechat = wechat if wechat is not None else AsyncWeChatClient(self.config)
        self.on_login = on_login
        self._router = core.Router(self.config)
        self._token_names = frozenset(_header_name(h) for h in self.config.token_headers)
        # Most headers are ruled out by length alone, before any lower()/replace().
        self._token_name_lengths = frozenset(len(name) for name in self._token_names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        kind = self._router.classify(_route_path(scope), _raw_path(scope))
        if kind is RequestKind.PUBLIC:
            await self.app(scope, receive, send)
            return
        if scope_type == "websocket" and kind in (RequestKind.LOGIN, RequestKind.LOGOUT):
            # Login and logout are HTTP requests; a websocket there needs a session.
            kind = RequestKind.PROTECTED
        session: Optional[WxSession] = None
        try:
            if kind is RequestKind.LOGIN:
                response = await self._login(scope, receive)
            elif kind is RequestKind.LOGOUT:
                response = await self._logout(scope)
            else:
                session = await self._authenticate(scope, kind)
                response = None
        except _ClientGone:
            logger.debug("login: the client disconnected before sending its body")
            return
        except WxError as error:
            response = self._error_response(scope, kind, error)
        except Exception as exc:  # a fault of ours answers JSON, without a traceback
            logger.error("internal error: %s", type(exc).__name__)
            response = self._error_response(scope, kind, WxError())
        if response is None:
            await self.app(_with_session(scope, session), receive, send)
        elif scope_type == "http":
            await _send_response(send, response)
        else:
            await _refuse_websocket(receive, send, response.status)

    def _error_response(self, scope: Scope, kind: RequestKind, error: WxError) -> core.Response:
        wafer = core.wafer_error(self.config, kind, error, _header_lookup(scope))
        return core.error_response(error, wafer)

    def _token(self, scope: Scope) -> Optional[str]:
        names, lengths = self._token_names, self._token_name_lengths
        values = [
            value.decode("latin-1")
            for name, value in scope["headers"]
            if len(name) in lengths and name.lower().replace(b"_", b"-") in names
        ]
        return core.pick_token(values) if values else None

    async def _authenticate(self, scope: Scope, kind: RequestKind) -> Optional[WxSession]:
        token = self._token(scope)
        if token is None:
            if kind is RequestKind.OPTIONAL:
                return None
            # A fresh error each time: a shared instance's traceback grows with every raise.
            raise core.missing_token_error(self.config)
        try:
            session = await self.store.get(token, self.config.session_ttl)
        except WxError as error:
            core.log_failure("session lookup", error, short_hash(token_key(token)))
            raise
        if session is None and kind is RequestKind.PROTECTED:
            raise InvalidSession()
        return session

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        length = core.body_length(_header(scope, b"content-length"), self.config)
        if length == 0:
            return b""
        limit = self.config.max_body_bytes
        chunks: List[bytes] = []
        size = 0
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone()
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            # A chunked body has no length to check up front: stop once it passes the limit.
            if size > limit:
                raise core.body_too_large(self.config)
            chunks.append(chunk)
            more_body = message.get("more_body", False)
        return b"".join(chunks)

    async def _login(self, scope: Scope, receive: Receive) -> core.Response:
        method = scope["method"]
        wafer = core.wafer_login(self.config, _header_lookup(scope))
        core.check_login_method(method, self.config, wafer is not None)
        if wafer is not None:
            code = wafer.code
        elif method == "GET":
            code = core.login_code_from_query(scope["query_string"].decode("latin-1"))
        else:
            body = await self._read_body(scope, receive)
            code = core.login_code_from_body(_header(scope, b"content-type"), body)
        try:
            token, session = await core.run_login_async(
                core.login_flow(code, self.config), self._perform
            )
            userinfo = None if wafer is None else core.wafer_userinfo(wafer, session, self.config)
        except WxError as error:
            core.log_failure("login", error, f"code={short_hash(code_key(code))}")
            raise
        logger.info("login: session %s", short_hash(token_key(token)))
        extra: Optional[Mapping[str, Any]] = None
        if self.on_login is not None:
            hook_scope = scope if userinfo is None else {**scope, "wxmiddleware.userinfo": userinfo}
            returned = self.on_login(session, hook_scope)
            extra = await returned if inspect.isawaitable(returned) else returned
        if userinfo is None:
            return core.login_response(token, session, self.config, extra)
        return core.wafer_login_response(token, userinfo, extra)

    async def _perform(self, effect: core.Effect) -> Any:
        if isinstance(effect, core.ClaimCode):
            return await self.store.claim_code(effect.code_key, effect.ttl)
        if isinstance(effect, core.LoadSession):
            return await self.store.get(effect.token, effect.idle_ttl)
        if isinstance(effect, core.ExchangeCode):
            return await self.wechat.code_to_session(effect.code)
        if isinstance(effect, core.SaveSession):
            return await self.store.save(
                effect.token, effect.session, effect.idle_ttl, effect.code_key, effect.sealed_token
            )
        if isinstance(effect, core.ReleaseCode):
            return await self.store.release_code(effect.code_key)
        await asyncio.sleep(effect.seconds)
        return None

    async def _logout(self, scope: Scope) -> core.Response:
        core.check_logout_method(scope["method"])
        token = self._token(scope)
        if token is None:
            raise core.missing_token_error(self.config)
        try:
            ended = await self.store.delete(token)
        except WxError as error:
            core.log_failure("logout", error, short_hash(token_key(token)))
            raise
        if ended:
            logger.info("logout: session %s", short_hash(token_key(token)))
        return core.logout_response()
