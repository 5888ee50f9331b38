"""A one-file Django project with Django's standard middleware and the wrapped handler built by
a function, so each test builds it after setting the environment.

``wsgi.py`` would hold ``application = create_wsgi_app()``; ``asgi.py`` the same with
``WxASGIMiddleware(get_asgi_application(), config=...)``.
"""

import json
import os
from typing import Optional

import django
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from wxmiddleware import WxConfig, WxMiddleware, session_of

if not settings.configured:
    settings.configure(
        ROOT_URLCONF=__name__,
        SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "only-for-this-example"),
        ALLOWED_HOSTS=["localhost", "127.0.0.1"],
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",  # APPEND_SLASH
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
    )
    django.setup()


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def me(request: HttpRequest) -> JsonResponse:
    # session_of reads request.META under WSGI and request.scope under ASGI.
    session = session_of(request)
    assert session is not None  # the middleware refused the request otherwise
    return JsonResponse({"openid": session.openid})


# The session token arrives in a header, which a cross-site form cannot send: it is not ambient
# authority like a cookie, so Django's CSRF check has nothing to protect on this view.
@csrf_exempt
def notes(request: HttpRequest) -> JsonResponse:
    note = json.loads(request.body)["note"]
    return JsonResponse({"openid": session_of(request).openid, "note": note}, status=201)


# Django routes "health/", and CommonMiddleware redirects "/health" there; the middleware
# runs first and matches paths exactly, so public_paths names the form Django routes.
urlpatterns = [path("health/", health), path("api/me/", me), path("api/notes/", notes)]


def create_wsgi_app(config: Optional[WxConfig] = None) -> WxMiddleware:
    from django.core.wsgi import get_wsgi_application

    return WxMiddleware(
        get_wsgi_application(), config=config or WxConfig.from_env(public_paths=("/health/",))
    )
