"""Bottle with WeChat mini-program login, through the session plugin.

Run: ``WX_APPID=... WX_SECRET=... gunicorn -w 2 examples.bottle_app:app``
"""

import bottle

from wxmiddleware import WxConfig, WxMiddleware
from wxmiddleware.integrations.bottle import WxSessionPlugin

bottle_app = bottle.Bottle()
# Routes with a wx_session parameter get the WxSession.
bottle_app.install(WxSessionPlugin())


@bottle_app.get("/health")
def health():  # type: ignore[no-untyped-def]
    return {"ok": True}


@bottle_app.get("/api/me")
def me(wx_session):  # type: ignore[no-untyped-def]
    return {"openid": wx_session.openid, "unionid": wx_session.unionid}


@bottle_app.get("/feed")
def feed(wx_session=None):  # type: ignore[no-untyped-def]
    # With WX_OPTIONAL_PATHS=/feed, a request without a session gets here with None.
    items = ["for everyone"]
    if wx_session is not None:
        items.append(f"for {wx_session.openid}")
    return {"items": items}


@bottle_app.get("/feed/mine")
def my_feed(wx_session):  # type: ignore[no-untyped-def]
    # Required even on an optional path: the plugin answers the middleware's 401.
    return {"openid": wx_session.openid}


app = WxMiddleware(bottle_app, config=WxConfig.from_env(public_paths=("/health",)))
