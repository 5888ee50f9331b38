"""What the WSGI and ASGI middleware share: their constructor.

:class:`~wxmiddleware.WxMiddleware` and :class:`~wxmiddleware.WxASGIMiddleware` take the
same arguments and differ only in what they open by default (a sync or async store and
WeChat client), the performer that carries out the core's plans, and the I/O glue it calls
(reading the body, calling ``on_login``): each names those as class attributes and methods.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, ClassVar, Generic, Iterable, List, Mapping, Optional, TypeVar

from ._ratelimit import AsyncLoginLimiter, LoginLimiter
from .config import WxConfig
from .core import Pipeline, RequestView, resolve_config
from .errors import ConfigError
from .observe import Observer, combine

_App = TypeVar("_App")
_Store = TypeVar("_Store")
_Client = TypeVar("_Client")
_Hook = TypeVar("_Hook")


class MiddlewareBase(Generic[_App, _Store, _Client, _Hook]):
    """The constructor of both middleware (see their class docstrings for the parameters).

    ``config`` and keyword ``options`` make the :class:`~wxmiddleware.WxConfig` (options
    override its fields); ``store`` and ``wechat`` default to what the configuration names,
    opened here and closed by the middleware's ``close``/``aclose``, while ones passed in
    stay the caller's.

    Events: ``on_login(session, request)`` may return extra fields for the login answer;
    ``on_logout(session, request)`` runs after a logout ended a live session;
    ``on_reject(reason, request)`` after the middleware refused a request (``reason``: see
    :mod:`wxmiddleware.observe`). ``request`` is the WSGI environ or the ASGI scope; under
    ASGI each hook may be a coroutine function. A failing ``on_logout`` or ``on_reject`` is
    logged and changes no answer. ``observers`` (:class:`~wxmiddleware.observe.Observer`:
    Prometheus metrics, OpenTelemetry traces…) are told every request's outcome and time
    every store and WeChat call; with none, nothing is called.

    Raises :class:`~wxmiddleware.errors.ConfigError` at construction, rather than on every
    request, for a ``store`` or ``wechat`` of the other kind (a synchronous store given to
    the ASGI middleware, an asynchronous one to the WSGI middleware) and, for the WSGI
    middleware, for a Flask app passed itself rather than its ``wsgi_app``.
    """

    #: The performer class that carries out the pipeline's plans (sync or async).
    performer_class: ClassVar[Any]
    #: The default WeChat client's class (sync or async).
    client_class: ClassVar[Any]
    #: ``open_store(url, appid)``: the default store (sync or async); a static method.
    _open_store: Callable[[Optional[str], str], Any]
    #: ``read_body(context, length, limit)``: reads the request body (a
    #: :class:`~wxmiddleware.core.ReadBody` effect); a static method of the adapter.
    _read_body: Callable[..., Any]

    def __init__(
        self,
        app: _App,
        config: Optional[WxConfig] = None,
        *,
        store: Optional[_Store] = None,
        wechat: Optional[_Client] = None,
        on_login: Optional[_Hook] = None,
        on_logout: Optional[Callable[..., Any]] = None,
        on_reject: Optional[Callable[..., Any]] = None,
        observers: Optional[Iterable[Observer]] = None,
        **options: Any,
    ) -> None:
        asynchronous = inspect.iscoroutinefunction(self.performer_class.run)
        if not asynchronous:
            _check_flask_app(type(self).__name__, app)
        _check_kind(type(self).__name__, asynchronous, store, "get", _STORE_ADVICE)
        _check_kind(type(self).__name__, asynchronous, wechat, "request", _CLIENT_ADVICE)
        self.app = app
        self.config = resolve_config(config, options)
        self.store: _Store = (
            store if store is not None else self._open_store(self.config.store, self.config.appid)
        )
        self.wechat: _Client = wechat if wechat is not None else self.client_class(self.config)
        self.on_login = on_login
        self._event_hooks = {
            event: hook
            for event, hook in (("logout", on_logout), ("reject", on_reject))
            if hook is not None
        }
        #: The observer every request reports to (``None``: no observers).
        self.observer = combine(observers)
        self._owned: List[Any] = [
            opened
            for opened, given in ((self.store, store), (self.wechat, wechat))
            if given is None
        ]
        self._pipeline = Pipeline(
            self.config,
            on_login is not None,
            self._header_key,
            events=tuple(self._event_hooks),
            observer=self.observer,
            view_of=self._view,
        )
        limiter = None
        if self._pipeline.limits is not None:
            limiter = (AsyncLoginLimiter if asynchronous else LoginLimiter)(self.config)
        self._performer = self.performer_class(
            self.store,
            self.wechat,
            self._read_body,
            self._call_hook,
            self._notify,
            observer=self.observer,
            limiter=limiter,
        )
        self._prepare()

    @staticmethod
    def _header_key(name: str) -> str:
        """The key under which the adapter's header map holds header ``name``."""
        return name

    def _view(self, request: Any) -> RequestView:
        """The adapter's request as the pipeline's :class:`~wxmiddleware.core.RequestView`
        (what ``Pipeline.handle`` was given as ``request``)."""
        raise NotImplementedError

    def _call_hook(self, context: Any, session: Any, userinfo: Any) -> Any:
        """Call ``on_login`` (a :class:`~wxmiddleware.core.CallHook` effect)."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Anything more the adapter sets up once, after the rest."""

    def _notify(self, context: Any, event: str, subject: Any) -> Any:
        """Call the ``on_logout``/``on_reject`` hook (a :class:`~wxmiddleware.core.Notify`
        effect); the async performer awaits what an async hook returns."""
        return self._event_hooks[event](subject, self._hook_request(context))

    def _hook_request(self, context: Any) -> Any:
        """What the event hooks receive as the request: the performer's context (the WSGI
        environ, Django's request); the ASGI adapter gives the scope."""
        return context


#: What to pass instead, by the kind the middleware needs (``True``: asynchronous).
_STORE_ADVICE = {
    True: "an asynchronous store: AsyncSQLiteStore(path), AsyncMemoryStore(), AsyncRedisStore"
    " or open_async_store(url, appid)",
    False: "a synchronous store: SQLiteStore(path), MemoryStore(), RedisStore"
    " or open_store(url, appid)",
}
_CLIENT_ADVICE = {
    True: "an asynchronous WeChat client: wxmiddleware.wechat.aio.AsyncWeChatClient(config)",
    False: "a synchronous WeChat client: wxmiddleware.wechat.WeChatClient(config)",
}


def _check_kind(
    middleware: str, asynchronous: bool, given: Any, method: str, advice: Mapping[bool, str]
) -> None:
    """Refuse ``given`` when its ``method`` is of the other kind than the performer's.

    The performer awaits (or calls) whatever the method returns: a sync store under ASGI
    fails every request with a TypeError, an async one under WSGI hands the pipeline an
    un-awaited coroutine. An object without ``method`` is left to fail where it is used.
    """
    bound = getattr(given, method, None) if given is not None else None
    # A partial of a bound coroutine method (the Redis and SQL stores' methods) is one too;
    # Python 3.9's iscoroutinefunction does not look through it.
    while isinstance(bound, functools.partial):
        bound = bound.func
    if bound is None or inspect.iscoroutinefunction(bound) == asynchronous:
        return
    raise ConfigError(
        f"{middleware} needs {advice[asynchronous]}; got {type(given).__name__},"
        f" whose {method}() is {'synchronous' if asynchronous else 'a coroutine function'}"
    )


def _check_flask_app(middleware: str, app: Any) -> None:
    """Refuse a Flask app passed itself: only its ``wsgi_app`` may be replaced.

    Wrapping the Flask object changes what gunicorn serves, but ``flask run``,
    ``app.test_client()`` and route decorators need the Flask object, which stays unwrapped
    (routes served without login in development and tests) or is no longer reachable. Only
    Flask apps have both ``wsgi_app`` and ``test_client``; Django's handler, Bottle and
    Pyramid apps do not.
    """
    if callable(getattr(app, "wsgi_app", None)) and hasattr(app, "test_client"):
        raise ConfigError(
            f"{middleware} wraps a Flask app's wsgi_app, not the app:"
            f" app.wsgi_app = {middleware}(app.wsgi_app, ...)"
        )
