"""Pyramid with WeChat mini-program login.

Run: ``WX_APPID=... WX_SECRET=... gunicorn -w 2 examples.pyramid_app:app``
"""

from pyramid.config import Configurator

from wxmiddleware import WxConfig, WxMiddleware


def health(request):  # type: ignore[no-untyped-def]
    return {"ok": True}


def me(request):  # type: ignore[no-untyped-def]
    # WxMiddleware sets REMOTE_USER, so request.remote_user is the openid too.
    return {
        "openid": request.environ["wxmiddleware.openid"],
        "unionid": request.environ["wxmiddleware.unionid"],
    }


with Configurator() as config:
    config.add_route("health", "/health", request_method="GET")
    config.add_route("me", "/api/me", request_method="GET")
    config.add_view(health, route_name="health", renderer="json")
    config.add_view(me, route_name="me", renderer="json")
    pyramid_app = config.make_wsgi_app()

app = WxMiddleware(pyramid_app, config=WxConfig.from_env(public_paths=("/health",)))
