"""Bottle: a plugin that hands routes the WeChat session.

https://bottlepy.org/docs/dev/plugindev.html

.. code-block:: python

    app = bottle.Bottle()
    app.install(WxSessionPlugin())

    @app.get("/api/me")
    def me(wx_session):                 # required: 401 without a session
        return {"openid": wx_session.openid}

    @app.get("/feed")
    def feed(wx_session=None):          # optional: None without one
        ...

    application = WxMiddleware(app, config=WxConfig.from_env())
"""

from __future__ import annotations

import inspect
from functools import wraps
from typing import Any, Callable

import bottle

from .._accessors import session_of
from . import unauthorized

__all__ = ["WxSessionPlugin"]


class WxSessionPlugin:
    """Passes the request's :class:`~wxmiddleware.WxSession` to every route with a
    parameter named ``keyword`` (``wx_session``); other routes are left as they are.

    A parameter without a default requires a session: a request without one (on an optional
    path: the middleware refuses it elsewhere) gets the middleware's ``401`` JSON. A
    parameter whose default is ``None`` gets ``None`` instead.
    """

    name = "wxsession"
    api = 2

    def __init__(self, keyword: str = "wx_session") -> None:
        self.keyword = keyword

    def setup(self, app: Any) -> None:
        """Refuse a second plugin that injects the same keyword."""
        for other in app.plugins:
            if isinstance(other, WxSessionPlugin) and other.keyword == self.keyword:
                raise bottle.PluginError(f"another WxSessionPlugin injects {self.keyword!r}")

    def apply(self, callback: Callable[..., Any], route: Any) -> Callable[..., Any]:
        """Wrap ``route``'s callback when it asks for the session."""
        parameter = inspect.signature(route.get_undecorated_callback()).parameters.get(self.keyword)
        if parameter is None:
            return callback
        required = parameter.default is not None
        keyword = self.keyword

        @wraps(callback)
        def with_session(*args: Any, **kwargs: Any) -> Any:
            session = session_of(bottle.request)
            if session is None and required:
                answer = unauthorized()
                return bottle.HTTPResponse(
                    body=answer.body, status=answer.status, headers=dict(answer.headers)
                )
            kwargs[keyword] = session
            return callback(*args, **kwargs)

        return with_session
