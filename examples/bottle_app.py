"""Bottle with WeChat mini-program login.

Run: ``WX_APPID=... WX_SECRET=... gunicorn -w 2 examples.bottle_app:app``
"""

import bottle

from wxmiddleware import WxConfig, WxMiddleware

bottle_app = bottle.Bottle()


@bottle_app.get("/health")
def health():  # type: ignore[no-untyped-def]
    return {"ok": True}


@bottle_app.get("/api/me")
def me():  # type: ignore[no-untyped-def]
    return {
        "openid": bottle.request.environ["wxmiddleware.openid"],
        "unionid": bottle.request.environ["wxmiddleware.unionid"],
    }


app = WxMiddleware(bottle_app, config=WxConfig.from_env(public_paths=("/health",)))
