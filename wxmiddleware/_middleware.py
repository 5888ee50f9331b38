"""What the WSGI and ASGI middleware share: their constructor.

:class:`~wxmiddleware.WxMiddleware` and :class:`~wxmiddleware.WxASGIMiddleware` take the
same arguments and differ only in what they open by default (a sync or async store and
WeChat client), the performer that carries out the core's plans, and the I/O glue it calls
(reading the body, calling ``on_login``): each names those as class attributes and methods.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Generic, List, Optional, TypeVar

from .config import WxConfig
from .core import Pipeline, resolve_config

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
        **options: Any,
    ) -> None:
        self.app = app
        self.config = resolve_config(config, options)
        self.store: _Store = (
            store if store is not None else self._open_store(self.config.store, self.config.appid)
        )
        self.wechat: _Client = wechat if wechat is not None else self.client_class(self.config)
        self.on_login = on_login
        self._owned: List[Any] = [
            opened
            for opened, given in ((self.store, store), (self.wechat, wechat))
            if given is None
        ]
        self._pipeline = Pipeline(self.config, on_login is not None, self._header_key)
        self._performer = self.performer_class(
            self.store, self.wechat, self._read_body, self._call_hook
        )
        self._prepare()

    @staticmethod
    def _header_key(name: str) -> str:
        """The key under which the adapter's header map holds header ``name``."""
        return name

    def _call_hook(self, context: Any, session: Any, userinfo: Any) -> Any:
        """Call ``on_login`` (a :class:`~wxmiddleware.core.CallHook` effect)."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Anything more the adapter sets up once, after the rest."""
