"""The Django projects of the in-process benchmark (the others' apps are in ``apps.py``):
importing this module configures Django in process, without a database; each project is one
view, ``/api/me``, behind its ``MIDDLEWARE``, served by Django's WSGI handler.
"""

from typing import Any, Callable, Dict, Optional

import django
from _bench import OPENID, UNIONID
from apps import SECRET_KEY, Finder
from django.conf import settings

CONTRIB = ["django.contrib.auth", "django.contrib.contenttypes"]  # RemoteUserMiddleware's
settings.configure(
    SECRET_KEY=SECRET_KEY,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,  # no routes: each project's request class names its own urlconf
    INSTALLED_APPS=[*CONTRIB, "wxmiddleware.integrations.django"],
    AUTHENTICATION_BACKENDS=[f"{__name__}.DictBackend"],
    SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",  # no database
)
django.setup()

from django.contrib.auth.middleware import RemoteUserMiddleware  # noqa: E402 (set up first)
from django.contrib.auth.models import User  # noqa: E402
from django.contrib.auth.signals import user_logged_in  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.urls import path  # noqa: E402

urlpatterns: Any = []
# The peer's users live in a dict, not in a database whose last_login a login would update.
user_logged_in.disconnect(dispatch_uid="update_last_login")


def project(view: Callable[[HttpRequest], Any], *middleware: str, **more: Any) -> Any:
    """Django's WSGI handler for a project of ``view`` at ``/api/me`` behind ``middleware``
    (dotted paths, as in ``MIDDLEWARE``), with the settings ``more`` while it starts."""
    urls = type("urls", (), {"urlpatterns": [path("api/me", view)]})
    request_class = type("Request", (WSGIRequest,), {"urlconf": urls})
    with override_settings(MIDDLEWARE=list(middleware), **more):
        return type("Handler", (WSGIHandler,), {"request_class": request_class})()


def app(wrapped: bool, config: Optional[Dict[str, Any]] = None) -> Any:
    """The project without middleware: ``/api/me`` answers constants or, ``wrapped``, what a
    middleware attached to ``request.META``; given ``config``, behind ``WxLoginMiddleware``
    with ``WXMIDDLEWARE = config`` (the store by its URL), as docs/frameworks/django.md adds it."""

    def me(request: HttpRequest) -> JsonResponse:
        if wrapped:
            meta = request.META
            unionid = meta["wxmiddleware.unionid"]
            return JsonResponse({"openid": meta["wxmiddleware.openid"], "unionid": unionid})
        return JsonResponse({"openid": OPENID, "unionid": UNIONID})

    wx = ["wxmiddleware.integrations.django.middleware.WxLoginMiddleware"] if config else []
    return project(me, *wx, WXMIDDLEWARE=config)


class HeaderRemoteUserMiddleware(RemoteUserMiddleware):
    """On the token header, as Django's docs read a custom one (howto/auth-remote-user/)."""

    header = "HTTP_3RD_SESSION"


class DictBackend:
    """``RemoteUserMiddleware``'s backend: the token (``remote_user``) is an unsaved user found
    with ``find``, the other peers' dict; no ``get_user``: a mini-program sends no cookie."""

    find: Finder = staticmethod(lambda token: None)

    def authenticate(self, request: Any, remote_user: str) -> Optional[User]:
        session = DictBackend.find(remote_user)
        return None if session is None else User(id=1, username=session.openid)


def remote_user_peer(find: Finder) -> Any:
    """Django's own way: ``RemoteUserMiddleware``, with the session and authentication middleware
    it needs, on a dict backend; without a cookie, each request logs in (``login()``) again."""
    DictBackend.find = staticmethod(find)

    def view(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"openid": request.user.get_username(), "unionid": UNIONID})

    session, auth = "django.contrib.sessions.middleware", "django.contrib.auth.middleware"
    middleware = [f"{session}.SessionMiddleware", f"{auth}.AuthenticationMiddleware"]
    return project(view, *middleware, f"{__name__}.HeaderRemoteUserMiddleware")
