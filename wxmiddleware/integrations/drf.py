"""Django REST framework: an authentication class for the WeChat session.

https://www.django-rest-framework.org/api-guide/authentication/#custom-authentication

.. code-block:: python

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "wxmiddleware.integrations.drf.WxSessionAuthentication",
        ],
        "EXCEPTION_HANDLER": "wxmiddleware.integrations.drf.exception_handler",
    }

It reads the session :class:`~wxmiddleware.integrations.django.middleware.WxLoginMiddleware`
attached (that middleware and :class:`~wxmiddleware.integrations.django.backends.WxSessionBackend`
must be installed). :func:`exception_handler` makes DRF refuse a request without a session
with the middleware's own ``401`` JSON. With drf-spectacular installed, the OpenAPI schema
declares the token header as an ``apiKey`` scheme (:class:`WxSessionScheme`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from rest_framework import views
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import NotAuthenticated

from .._accessors import session_of
from ..session import WxSession
from . import unauthorized
from .django.auth import unauthorized_response
from .django.middleware import wx_config

__all__ = ["WxSessionAuthentication", "exception_handler"]

#: The ``WWW-Authenticate`` challenge of the middleware's own ``401``.
_CHALLENGE = dict(unauthorized().headers)["WWW-Authenticate"]


class WxSessionAuthentication(BaseAuthentication):
    """Authenticates a request by its WeChat session: ``request.user`` is the Django user
    linked to the openid, ``request.auth`` the :class:`~wxmiddleware.WxSession`.

    A request without a session (on an optional path: the middleware refuses it elsewhere)
    is not authenticated here (``None``), so ``AllowAny`` views serve it and
    ``IsAuthenticated`` refuses it with a ``401`` that carries the middleware's
    ``WWW-Authenticate`` challenge (:meth:`authenticate_header`); with
    :func:`exception_handler` as DRF's ``EXCEPTION_HANDLER`` its body is the middleware's
    too, not DRF's ``{"detail": ...}``.
    """

    def authenticate(self, request: Any) -> Optional[Tuple[Any, WxSession]]:
        """``(user, session)`` when the middleware attached a session, else ``None``."""
        django_request = request._request
        session = session_of(django_request)
        if session is None:
            return None
        user = getattr(django_request, "user", None)
        if user is None or not user.is_authenticated:  # no WxSessionBackend gave a user
            return None
        return user, session

    def authenticate_header(self, request: Any) -> str:
        """The ``WWW-Authenticate`` value of a ``401``: DRF answers ``403`` without one."""
        return _CHALLENGE


def exception_handler(exc: Exception, context: Dict[str, Any]) -> Any:
    """DRF's ``EXCEPTION_HANDLER`` (https://www.django-rest-framework.org/api-guide/exceptions/):
    the middleware's ``401`` (``{"error": "invalid_session", "message": ...}`` JSON with
    ``WWW-Authenticate``) for a request refused as not authenticated by a view whose first
    authentication class is :class:`WxSessionAuthentication`; DRF's own answer
    (``rest_framework.views.exception_handler``) to everything else.

    Call it from a handler of your own to keep both.
    """
    # DRF set auth_header from the view's first authentication class: ours, when it is this.
    if isinstance(exc, NotAuthenticated) and getattr(exc, "auth_header", None) == _CHALLENGE:
        return unauthorized_response()
    return views.exception_handler(exc, context)


try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension
except ImportError:  # drf-spectacular is optional
    pass
else:

    class WxSessionScheme(OpenApiAuthenticationExtension):
        """drf-spectacular's description of :class:`WxSessionAuthentication`: an ``apiKey``
        in the first configured token header (``3rd-session``), named ``wxSession``.

        https://drf-spectacular.readthedocs.io/en/latest/customization.html#step-5-extensions
        """

        target_class = "wxmiddleware.integrations.drf.WxSessionAuthentication"
        name = "wxSession"

        def get_security_definition(self, auto_schema: Any) -> Dict[str, str]:
            """The OpenAPI security scheme object."""
            return {
                "type": "apiKey",
                "in": "header",
                "name": wx_config().token_headers[0],
                "description": "The 3rd_session token from the login path.",
            }
