"""Flask: the ``WxLogin`` extension (https://flask.palletsprojects.com/en/stable/extensiondev/).

.. code-block:: python

    app = Flask(__name__)
    app.config["WX_PUBLIC_PATHS"] = ["/health"]
    wx = WxLogin(app)          # or wx = WxLogin(); wx.init_app(app) in an app factory

    @app.get("/api/me")
    def me():
        return {"openid": current_wx_session.openid}
"""

from __future__ import annotations

import os
from functools import wraps
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, TypeVar, cast

from flask import Flask, Response, request
from werkzeug.local import LocalProxy

from .._accessors import session_of
from ..config import WxConfig
from ..observe import Observer
from ..session import WxSession
from ..wsgi import LoginHook, WxMiddleware
from . import unauthorized

__all__ = ["WxLogin", "current_wx_session", "unauthorized_response", "wx_login_required"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _current() -> Optional[WxSession]:
    return session_of(request)


#: The :class:`~wxmiddleware.WxSession` of the current request (a proxy, like Flask's
#: ``request``); false on an optional path without a valid token and on a public path: test
#: it with ``if current_wx_session:``, never ``is None`` (a proxy is never ``None``). Only
#: inside a request.
current_wx_session: LocalProxy[Optional[WxSession]] = LocalProxy(_current)


def _setting(value: Any) -> str:
    """An ``app.config`` value as ``WxConfig.from_env`` reads a variable."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(value)
    return str(value)


def config_from(
    app_config: Mapping[str, Any], environ: Optional[Mapping[str, str]] = None
) -> WxConfig:
    """The :class:`~wxmiddleware.WxConfig` from ``app.config``'s ``WX_*`` keys (the names
    of the environment variables the README lists; lists for the path and origin lists),
    over the ``WX_*`` environment. Raises :class:`~wxmiddleware.errors.ConfigError` for a
    missing appid/secret or a bad value, naming the key."""
    values: Dict[str, str] = {
        name: value
        for name, value in (os.environ if environ is None else environ).items()
        if name.startswith("WX_")
    }
    for name, value in app_config.items():
        if name.startswith("WX_") and value is not None:
            values[name] = _setting(value)
    return WxConfig.from_env(values)


def unauthorized_response() -> Response:
    """The middleware's ``401`` (JSON, ``WWW-Authenticate``) as a Flask response: for Flask-
    Login's ``unauthorized_handler`` and anything else that must refuse a request."""
    answer = unauthorized()
    return Response(answer.body, status=answer.status, headers=list(answer.headers))


def wx_login_required(view: _F) -> _F:
    """Refuse a request without a valid session with the middleware's ``401``.

    For views on ``optional_paths`` (where the middleware lets a request without a session
    through): on every other path the middleware has already refused it.
    """

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if session_of(request) is None:
            return unauthorized_response()
        return view(*args, **kwargs)

    return cast(_F, guarded)


class WxLogin:
    """WeChat login for a Flask app: installs :class:`~wxmiddleware.WxMiddleware` on
    ``app.wsgi_app`` (so ``flask run``, the test client and gunicorn all go through it).

    The configuration comes from ``app.config``'s ``WX_*`` keys over the environment
    (:func:`config_from`), unless ``config`` is given; ``store``, ``wechat``, the event
    hooks (``on_login``, ``on_logout``, ``on_reject``) and ``observers`` go to the
    middleware. After :meth:`init_app`, ``app.extensions["wxmiddleware"]`` is the middleware
    (``close()`` it when the app ends).
    """

    def __init__(
        self,
        app: Optional[Flask] = None,
        config: Optional[WxConfig] = None,
        *,
        store: Any = None,
        wechat: Any = None,
        on_login: Optional[LoginHook] = None,
        on_logout: Optional[Callable[..., Any]] = None,
        on_reject: Optional[Callable[..., Any]] = None,
        observers: Optional[Iterable[Observer]] = None,
    ) -> None:
        self.config = config
        self.store = store
        self.wechat = wechat
        self.on_login = on_login
        self.on_logout = on_logout
        self.on_reject = on_reject
        self.observers = observers
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> WxMiddleware:
        """Wrap ``app.wsgi_app``; returns the middleware."""
        middleware = WxMiddleware(
            app.wsgi_app,
            config=self.config or config_from(app.config),
            store=self.store,
            wechat=self.wechat,
            on_login=self.on_login,
            on_logout=self.on_logout,
            on_reject=self.on_reject,
            observers=self.observers,
        )
        app.wsgi_app = middleware  # type: ignore[method-assign]
        app.extensions["wxmiddleware"] = middleware
        return middleware
