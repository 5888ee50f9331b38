"""The Django middleware: the middleware's pipeline inside Django's ``MIDDLEWARE``.

https://docs.djangoproject.com/en/stable/topics/http/middleware/
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Dict, Optional, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import authenticate, get_backends
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from ..._asgi_scope import ScopeHeaders
from ..._middleware import MiddlewareBase
from ..._perform import AsyncPerformer, SyncPerformer
from ...config import WxConfig
from ...core import Forward, Outcome, Plan, RequestView, Respond
from ...errors import UserBlocked
from ...session import WxSession
from ...stores import open_store
from ...wechat.sync import WeChatClient
from ...wsgi import _attach, _environ_key
from ._http import as_http_response
from .backends import WxSessionBackend

__all__ = ["WxLoginMiddleware", "wx_config"]


def wx_config() -> WxConfig:
    """The configuration: ``settings.WXMIDDLEWARE`` (a dict of
    :class:`~wxmiddleware.WxConfig` field names, ``{"public_paths": ["/health/"]}``) over
    the ``WX_*`` environment (:meth:`~wxmiddleware.WxConfig.from_env`).

    Raises :class:`~wxmiddleware.errors.ConfigError` when neither gives the appid and secret.
    """
    options: Dict[str, Any] = dict(getattr(settings, "WXMIDDLEWARE", None) or {})
    return WxConfig.from_env(**options)


def _read_body(request: HttpRequest, length: Optional[int], limit: int) -> bytes:
    # One byte past the limit tells "at the limit" from "over it" (see wsgi.py).
    return bytes(request.read(limit + 1 if length is None else length))


async def _aread_body(request: HttpRequest, length: Optional[int], limit: int) -> bytes:
    # Django's ASGI handler buffered the body before the middleware ran: no I/O waits here.
    return _read_body(request, length, limit)


def _raw_path(request: HttpRequest) -> Optional[str]:
    scope = getattr(request, "scope", None)
    if scope is not None:
        raw: Optional[bytes] = scope.get("raw_path")
        return None if raw is None else raw.decode("latin-1")
    meta = request.META
    found: Optional[str] = meta.get("RAW_URI") or meta.get("REQUEST_URI")
    return found


def _plan(adapter: MiddlewareBase[Any, Any, Any, Any], request: HttpRequest) -> Plan:
    # Django has parsed the request already: the view costs little, and gives the facts.
    view = adapter._view(request)
    return adapter._pipeline.handle(
        request, view.method, view.path, view.raw_path, view.lookup_headers
    )


class _SyncAdapter(MiddlewareBase[Any, Any, Any, Any]):
    """The pipeline and a sync performer, over ``request.META`` (the WSGI environ's keys)."""

    performer_class = SyncPerformer
    client_class = WeChatClient
    _open_store = staticmethod(open_store)
    _header_key = staticmethod(_environ_key)
    _read_body = staticmethod(_read_body)

    def _call_hook(self, request: HttpRequest, session: WxSession, userinfo: Any) -> None:
        assert self.on_login is not None  # the pipeline asks only when it is set
        self.on_login(request, session, session.appid)

    def _view(self, request: HttpRequest) -> RequestView:
        meta = request.META
        # Django's WSGI request reads no further than Content-Length; its ASGI request holds
        # the whole body.
        return RequestView(
            request.method or "GET",
            request.path_info,
            _raw_path(request),
            meta.get("QUERY_STRING", ""),
            meta,
            False,
            hasattr(request, "scope"),
            meta.get("REMOTE_ADDR"),
        )


def _open_async_store(url: Optional[str], appid: str) -> Any:
    from ...stores.aio import open_async_store

    return open_async_store(url, appid)


def _async_client(config: WxConfig) -> Any:
    from ...wechat.aio import AsyncWeChatClient  # aiohttp: wxmiddleware[asgi]

    return AsyncWeChatClient(config)


class _AsyncAdapter(MiddlewareBase[Any, Any, Any, Any]):
    """The pipeline and an async performer, over the ASGI scope's raw headers (Django's
    ASGI request drops header names with ``_``; the scope keeps ``3rd_session``)."""

    performer_class = AsyncPerformer
    client_class = staticmethod(_async_client)
    _open_store = staticmethod(_open_async_store)
    _read_body = staticmethod(_aread_body)

    def _prepare(self) -> None:
        self._headers = ScopeHeaders.for_pipeline(self._pipeline)

    async def _call_hook(self, request: HttpRequest, session: WxSession, userinfo: Any) -> None:
        assert self.on_login is not None  # the pipeline asks only when it is set
        await sync_to_async(self.on_login)(request, session, session.appid)

    def _view(self, request: HttpRequest) -> RequestView:
        scope: Dict[str, Any] = request.scope
        return RequestView(
            request.method or "GET",
            request.path_info,
            _raw_path(request),
            scope.get("query_string", b""),
            self._headers.read(scope["headers"]),
            False,
            True,
            request.META.get("REMOTE_ADDR"),
        )


class WxLoginMiddleware:
    """WeChat login for a Django project, as a ``MIDDLEWARE`` entry; sync and async capable.

    It runs the pipeline of :class:`~wxmiddleware.WxMiddleware`: it answers the login path
    (``POST /wx/login``) and the logout path itself, refuses a request without a valid
    ``3rd-session`` token on every other path that is not public or optional (``401`` JSON
    with ``WWW-Authenticate``; ``503`` when the store is down), and attaches the session to
    the requests it lets through: :func:`~wxmiddleware.session_of` reads it, and so does
    ``request.META["wxmiddleware.openid"]``. Under ASGI (every middleware before it async
    capable) it runs in the event loop with an asynchronous store and WeChat client; under
    WSGI synchronously. The configuration is :func:`wx_config`'s.

    With :class:`~.backends.WxSessionBackend` in ``AUTHENTICATION_BACKENDS``, each WeChat
    login also authenticates the Django user linked to the openid in the session's own app
    (``session.appid``: with several apps each has its account; created on the first login)
    and sends ``user_logged_in``; a request with a session gets that user as
    ``request.user`` (looked up when first read) and ``await request.auser()``. A request
    without one keeps the ``request.user`` ``AuthenticationMiddleware`` gave it (an
    ``AnonymousUser`` when there is none), so put this entry after it; on an optional path,
    :func:`~.auth.wx_login_required` and :class:`~.auth.WxLoginRequiredMixin` refuse it with
    this middleware's ``401``. Without the backend no Django user is involved and no
    database is needed.

    .. code-block:: python

        MIDDLEWARE = [..., "django.contrib.auth.middleware.AuthenticationMiddleware",
                      "wxmiddleware.integrations.django.middleware.WxLoginMiddleware"]
        AUTHENTICATION_BACKENDS = ["wxmiddleware.integrations.django.backends.WxSessionBackend",
                                   "django.contrib.auth.backends.ModelBackend"]
        WXMIDDLEWARE = {"public_paths": ["/health/", "/admin/*"]}

    The admin and other pages a browser session authenticates need ``public_paths``: the
    middleware refuses them otherwise.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.backend: Optional[WxSessionBackend] = next(
            (found for found in get_backends() if isinstance(found, WxSessionBackend)), None
        )
        on_login = None if self.backend is None else _log_in
        self.asynchronous = iscoroutinefunction(get_response)
        adapter = _AsyncAdapter if self.asynchronous else _SyncAdapter
        self._adapter = adapter(get_response, wx_config(), on_login=on_login)
        if self.asynchronous:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.asynchronous:
            return self._acall(request)
        adapter = self._adapter
        plan = _plan(adapter, request)
        outcome = adapter._performer.run_request(plan, request)
        if isinstance(outcome, Forward):
            self._attach(request, outcome)
            return self.get_response(request)
        return as_http_response(cast(Respond, outcome).response)

    async def _acall(self, request: HttpRequest) -> Any:
        adapter = self._adapter
        plan = _plan(adapter, request)
        outcome: Outcome = await adapter._performer.run_request(plan, request)
        if isinstance(outcome, Forward):
            self._attach(request, outcome)
            return await self.get_response(request)
        # Django buffered the body before we ran: no client leaves mid-read (no DROP).
        return as_http_response(cast(Respond, outcome).response)

    def _attach(self, request: HttpRequest, outcome: Forward) -> None:
        if not outcome.attach:
            return
        session = outcome.session
        _attach(request.META, session)
        if session is not None and self.backend is not None:
            find = partial(self._user, request, session)
            request.user = SimpleLazyObject(find)
            request.auser = sync_to_async(find)
        elif not hasattr(request, "user"):
            request.user = AnonymousUser()

    def _user(self, request: HttpRequest, session: WxSession) -> Any:
        # Read once per request, from request.user or request.auser(), whichever comes first.
        found = getattr(request, "_wx_user", None)
        if found is None:
            assert self.backend is not None  # only attached with a backend
            found = self.backend.user_for_session(request, session, session.appid)
            found = AnonymousUser() if found is None else found
            request._wx_user = found
        return found


def _log_in(request: HttpRequest, session: WxSession, appid: str) -> None:
    """After a WeChat login: authenticate its Django user and send ``user_logged_in``."""
    user = authenticate(request, wx_session=session, wx_appid=appid)
    if user is None:
        raise UserBlocked("This WeChat user may not log in to this site.")
    request.user = user
    user_logged_in.send(sender=type(user), request=request, user=user)
