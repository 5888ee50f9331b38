"""Django, as a single-file project, with WeChat login as a Django app, in both modes.

WSGI: ``WX_APPID=... WX_SECRET=... gunicorn -w 2 examples.django_app:app``
ASGI: ``WX_APPID=... WX_SECRET=... uvicorn --workers 2 examples.django_app:asgi``

``wxmiddleware.integrations.django``: ``WxLoginMiddleware`` answers ``/wx/login`` and refuses
requests without a session (sync under WSGI, async under ASGI); ``WxSessionBackend`` gives
each WeChat user a Django user, created on the first login, so ``request.user`` and
``@login_required`` work. Under ASGI the middleware reads the raw headers, so ``3rd_session``
works although Django's own ASGI request ignores header names with underscores.

The example keeps its database in memory, created and migrated when it starts (each process
has its own; a user is created again on the worker that first sees it). A real project names
a real database and runs ``manage.py migrate`` once.
"""

import os
import secrets
import threading

import django
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.management import call_command
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.urls import path

from wxmiddleware import session_of

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        # No Django sessions or signing are used here; a per-process key is enough.
        SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "wxmiddleware.integrations.django",
        ],
        MIDDLEWARE=["wxmiddleware.integrations.django.middleware.WxLoginMiddleware"],
        AUTHENTICATION_BACKENDS=[
            "wxmiddleware.integrations.django.backends.WxSessionBackend",
            "django.contrib.auth.backends.ModelBackend",
        ],
        # One in-memory database per process, shared by its threads (Django's ASGI handler
        # runs the ORM in a thread of its own).
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": "file:wxmiddleware-example?mode=memory&cache=shared",
            }
        },
        # WxConfig's fields over the WX_* environment (WX_APPID, WX_SECRET, ...).
        WXMIDDLEWARE={"public_paths": ["/health"]},
    )
    django.setup()

    def migrate() -> None:
        call_command("migrate", verbosity=0)
        # An in-memory database lives while a connection to it is open: keep this one.
        KEEP_ALIVE.append(connections["default"].connection)

    # In a thread: uvicorn imports the app inside its event loop, where Django refuses
    # database calls.
    KEEP_ALIVE: list = []
    migration = threading.Thread(target=migrate)
    migration.start()
    migration.join()


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def me(request: HttpRequest) -> JsonResponse:
    # session_of reads what the middleware attached, under WSGI and ASGI alike.
    session = session_of(request)
    assert session is not None  # the middleware refused the request otherwise
    return JsonResponse({"openid": session.openid, "unionid": session.unionid})


@login_required
def profile(request: HttpRequest) -> JsonResponse:
    # request.user is the Django user the WeChat login created; its account in this
    # mini-program (one per app, with several in WX_APPS) holds the openid.
    appid = request.META["wxmiddleware.appid"]
    account = request.user.wx_accounts.get(appid=appid)  # type: ignore[union-attr]
    return JsonResponse({"username": request.user.get_username(), "openid": account.openid})


urlpatterns = [path("health", health), path("api/me", me), path("api/profile", profile)]

from django.core.asgi import get_asgi_application  # noqa: E402 (needs settings first)
from django.core.wsgi import get_wsgi_application  # noqa: E402

app = get_wsgi_application()
asgi = get_asgi_application()
