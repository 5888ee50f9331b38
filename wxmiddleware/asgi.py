"""WxASGIMiddleware: WeChat mini-program login for any ASGI application.

The adapter only translates: the scope is handed to the core's pipeline (its method, paths
and lookup headers; a :class:`~wxmiddleware.core.RequestView` of it when the pipeline asks),
the :class:`~wxmiddleware._perform.AsyncPerformer` runs the plan, and the outcome becomes a
call of the app (with a copy of the scope), an answer, or a refused websocket.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple

from ._asgi_scope import (
    ScopeHeaders,
    WxCredentials,
    WxUser,
    client_host,
    read_body,
    send_response,
    with_session,
)
from ._middleware import MiddlewareBase
from ._perform import AsyncPerformer
from .core import Forward, RequestView, Respond
from .session import WxSession
from .stores.aio import open_async_store
from .stores.base import AsyncSessionStore
from .wechat.aio import AsyncWeChatClient

if TYPE_CHECKING:
    from asgiref.typing import (
        ASGI3Application,
        ASGIReceiveCallable,
        ASGISendCallable,
        ASGISendEvent,
        Scope,
    )

    # asgiref's name, spelled for the base class below (a string there: typing only).
    ASGIApp = ASGI3Application
    # A scope read as a plain mapping (what the app receives has keys no TypedDict names).
    AttachedScope = Dict[str, Any]
    #: What __call__ hands the pipeline as the request, and the performer as its context:
    #: the scope, ``receive``, the path below root_path and the raw headers as a list.
    Context = Tuple[AttachedScope, ASGIReceiveCallable, str, List[Tuple[bytes, bytes]]]

__all__ = ["LoginHook", "WxASGIMiddleware", "WxCredentials", "WxUser"]

#: ``on_login(session, scope)`` may return (or be a coroutine returning) extra fields for the
#: login answer.
LoginHook = Callable[[WxSession, "AttachedScope"], Any]


class WxASGIMiddleware(MiddlewareBase["ASGIApp", AsyncSessionStore, AsyncWeChatClient, LoginHook]):
    """Wrap an ASGI app with WeChat mini-program login.

    The middleware answers the login path (``POST /wx/login``) and the logout path
    (``POST /wx/logout``) itself. Every other HTTP request and websocket must carry a session
    token in the ``3rd-session`` header (``3rd_session`` and ``X-WX-Skey`` work too) unless
    its path is public or optional. An HTTP request without a valid one is answered ``401``
    JSON; a websocket is closed with code ``4401`` before the app sees it (servers answer the
    handshake with HTTP ``403``; other refusals close with ``4000 + status``).

    For an accepted request or websocket, the app receives a copy of the scope with
    ``wxmiddleware.session`` (the :class:`~wxmiddleware.WxSession`, or ``None`` on an
    optional path without a valid token), ``wxmiddleware.openid``,
    ``wxmiddleware.session_key``, ``wxmiddleware.unionid``, ``wxmiddleware.appid``,
    ``wxmiddleware.platform``, ``user`` (a :class:`WxUser`:
    Starlette's ``request.user``) and ``auth`` (a :class:`WxCredentials`, so Starlette's
    ``requires("authenticated")`` works). A public path gets the scope untouched;
    ``lifespan`` passes through, and when the app completes its shutdown the middleware
    closes the store and WeChat client it opened itself. ``session_key`` is for server-side
    use; never send it to a client. Wafer clients work as with
    :class:`~wxmiddleware.WxMiddleware`.

    .. code-block:: python

        app = WxASGIMiddleware(starlette_app, config=WxConfig.from_env())
        # or, in FastAPI: app.add_middleware(WxASGIMiddleware, appid="wx...", secret="...")

    :param app: the ASGI application to wrap.
    :param config: a :class:`~wxmiddleware.WxConfig`; keyword ``options`` override its fields.
    :param store: an asynchronous session store; by default the one ``config.store`` names,
        else SQLite (see :func:`~wxmiddleware.stores.aio.open_async_store`).
    :param wechat: the WeChat client; by default an
        :class:`~wxmiddleware.wechat.aio.AsyncWeChatClient`.
    :param on_login: called with the session and the scope after each successful login (a
        plain function or a coroutine function); the mapping it returns is added to the
        login answer. For a Wafer login its scope (a copy) has ``"wxmiddleware.userinfo"``.
    """

    performer_class = AsyncPerformer
    client_class = AsyncWeChatClient
    _performer: AsyncPerformer[Context]
    _open_store = staticmethod(open_async_store)
    _read_body = staticmethod(read_body)

    def _prepare(self) -> None:
        headers = ScopeHeaders.for_pipeline(self._pipeline)
        self._read_headers = headers.read
        self._read_lookup = headers.read_lookup

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing_on_shutdown(send))
            return
        # Read as a plain mapping: servers and other middleware add keys no TypedDict names
        # (an annotation, not cast(): no call on every request).
        www: AttachedScope = scope  # type: ignore[assignment]
        scope_type = www["type"]
        if scope_type != "http" and scope_type != "websocket":
            await self.app(scope, receive, send)
            return
        # The path below root_path, as PATH_INFO is below SCRIPT_NAME: servers that mount the
        # app under a prefix include it in "path"; routing frameworks strip it, and so do we.
        path: str = www["path"]
        root_path = www.get("root_path")
        if root_path and path.startswith(root_path + "/"):
            path = path[len(root_path) :]
        raw_headers = www["headers"]
        if type(raw_headers) is not list:
            # The spec allows any iterable, and this one is read more than once (the lookup
            # headers, all of them, the app): the app gets a scope holding the list.
            raw_headers = list(raw_headers)
            www = {**www, "headers": raw_headers}
        request = (www, receive, path, raw_headers)
        plan = self._pipeline.handle(
            request,
            www.get("method", "GET"),
            path,
            www.get("raw_path"),
            self._read_lookup(raw_headers),
        )
        outcome = await self._performer.run_request(plan, request)
        if isinstance(outcome, Forward):
            if outcome.attach:
                www = with_session(www, outcome.session)
            # The app gets the scope with our keys: a mapping asgiref's TypedDicts cannot name.
            await self.app(www, receive, send)  # type: ignore[arg-type]
        elif type(outcome) is Respond:
            await send_response(outcome.response, scope_type == "websocket", receive, send)

    def _view(self, request: Context) -> RequestView:
        scope, _, path, raw_headers = request
        return RequestView(
            scope.get("method", "GET"),
            path,
            scope.get("raw_path"),
            scope.get("query_string", b""),
            self._read_lookup(raw_headers),
            scope["type"] == "websocket",
            True,
            client_host(scope.get("client")),
            raw_headers,
            self._read_headers,
        )

    async def _call_hook(
        self, context: Context, session: WxSession, userinfo: Optional[Mapping[str, Any]]
    ) -> Optional[Mapping[str, Any]]:
        assert self.on_login is not None  # the pipeline asks only when it is set
        scope = context[0]
        hook_scope = scope if userinfo is None else {**scope, "wxmiddleware.userinfo": userinfo}
        returned = self.on_login(session, hook_scope)
        extra: Optional[Mapping[str, Any]] = (
            await returned if inspect.isawaitable(returned) else returned
        )
        return extra

    def _hook_request(self, context: Context) -> AttachedScope:
        return context[0]

    def _closing_on_shutdown(self, send: ASGISendCallable) -> ASGISendCallable:
        async def send_after_closing(message: ASGISendEvent) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.aclose()
            await send(message)

        return send_after_closing

    async def aclose(self) -> None:
        """Close the store and WeChat client this middleware opened (not ones passed in)."""
        for opened in self._owned:
            await opened.aclose()
