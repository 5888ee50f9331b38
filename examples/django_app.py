"""Django, as a single-file project, with WeChat mini-program login in both modes.

WSGI: ``WX_APPID=... WX_SECRET=... gunicorn -w 2 examples.django_app:app``
ASGI: ``WX_APPID=... WX_SECRET=... uvicorn --workers 2 examples.django_app:asgi``

The middleware wraps Django's whole handler, so it runs before Django parses the request; under
ASGI it reads the raw headers, and ``3rd_session`` works although Django's own ASGI request
ignores header names with underscores.
"""

import os
import secrets

import django
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path

from wxmiddleware import WxASGIMiddleware, WxConfig, WxMiddleware

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        # No Django sessions or signing are used here; a per-process key is enough.
        SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
    )
    django.setup()


def wx_value(request: HttpRequest, key: str) -> object:
    """What the middleware attached: in ``request.scope`` under ASGI, in ``META`` under WSGI."""
    scope = getattr(request, "scope", None)
    return scope[key] if scope is not None else request.META[key]


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def me(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "openid": wx_value(request, "wxmiddleware.openid"),
            "unionid": wx_value(request, "wxmiddleware.unionid"),
        }
    )


urlpatterns = [path("health", health), path("api/me", me)]

wx_config = WxConfig.from_env(public_paths=("/health",))

from django.core.asgi import get_asgi_application  # noqa: E402 (needs settings first)
from django.core.wsgi import get_wsgi_application  # noqa: E402

app = WxMiddleware(get_wsgi_application(), config=wx_config)
asgi = WxASGIMiddleware(get_asgi_application(), config=wx_config)
