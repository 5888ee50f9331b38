"""Pyramid with WeChat mini-program login, through its security policy.

Run: ``WX_APPID=... WX_SECRET=... gunicorn -w 2 examples.pyramid_app:app``
"""

from pyramid.authorization import Allow, Authenticated
from pyramid.config import Configurator

from wxmiddleware import WxConfig, WxMiddleware


class Root:
    """The root context: signed-in WeChat users may "read"."""

    __acl__ = ((Allow, Authenticated, "read"),)

    def __init__(self, request):  # type: ignore[no-untyped-def]
        self.request = request


def health(request):  # type: ignore[no-untyped-def]
    return {"ok": True}


def me(request):  # type: ignore[no-untyped-def]
    # request.identity is the WxSession; request.authenticated_userid the openid.
    return {"openid": request.authenticated_userid, "unionid": request.identity.unionid}


with Configurator(root_factory=Root) as config:
    # WxSecurityPolicy, and a request without a session denied a permission gets the
    # middleware's 401 JSON (on an optional path; the middleware refuses it elsewhere).
    config.include("wxmiddleware.integrations.pyramid")
    config.add_route("health", "/health", request_method="GET")
    config.add_route("me", "/api/me", request_method="GET")
    config.add_view(health, route_name="health", renderer="json")
    config.add_view(me, route_name="me", renderer="json", permission="read")
    pyramid_app = config.make_wsgi_app()

app = WxMiddleware(pyramid_app, config=WxConfig.from_env(public_paths=("/health",)))
