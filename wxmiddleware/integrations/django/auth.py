"""``@login_required`` and ``LoginRequiredMixin`` for API routes: the middleware's ``401``
instead of a redirect to a login form.

On an ``optional_paths`` route :class:`~.middleware.WxLoginMiddleware` lets a request without
a valid token through and the view decides. Django's ``@login_required`` and
``LoginRequiredMixin`` then redirect to ``settings.LOGIN_URL``, which suits a page a browser
shows; a route the mini-program calls wants the answer the middleware gives on every other
path. :func:`wx_login_required` and :class:`WxLoginRequiredMixin` give it: ``401
{"error": "invalid_session", "message": ...}`` with ``WWW-Authenticate``, sync and async
views alike.

.. code-block:: python

    from wxmiddleware.integrations.django.auth import WxLoginRequiredMixin, wx_login_required

    @wx_login_required
    def feed(request):
        return JsonResponse({"username": request.user.get_username()})

    class Orders(WxLoginRequiredMixin, View):
        def get(self, request): ...

https://docs.djangoproject.com/en/stable/topics/auth/default/#limiting-access-to-logged-in-users
"""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable, Optional, TypeVar, cast

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse

from ..._accessors import session_of
from .. import unauthorized
from ._http import as_http_response

__all__ = ["WxLoginRequiredMixin", "unauthorized_response", "wx_login_required"]

_V = TypeVar("_V", bound=Callable[..., Any])


def unauthorized_response() -> HttpResponse:
    """The middleware's ``401`` (JSON, ``WWW-Authenticate``) as a Django response, for any
    view or handler that must refuse a request without a WeChat session."""
    return as_http_response(unauthorized())


def _refusal(request: HttpRequest) -> Optional[HttpResponse]:
    # The session is what the middleware attached: None on an optional path without a valid
    # token, and on a public path (where it attaches nothing).
    return unauthorized_response() if session_of(request) is None else None


def wx_login_required(view: _V) -> _V:
    """Refuse a request without a WeChat session with the middleware's ``401``; a sync view
    stays sync and an async one async (Django runs each in its mode).

    With :class:`~.backends.WxSessionBackend`, ``request.user`` in the view is the user
    linked to the session. For views on ``optional_paths``: elsewhere the middleware has
    refused such a request already. A public path has no session, so the view refuses every
    request there.
    """
    if iscoroutinefunction(view):

        @wraps(view)
        async def guarded_async(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            refused = _refusal(request)
            if refused is not None:
                return refused
            return await view(request, *args, **kwargs)

        return cast(_V, guarded_async)

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        refused = _refusal(request)
        if refused is not None:
            return refused
        return view(request, *args, **kwargs)

    return cast(_V, guarded)


class WxLoginRequiredMixin:
    """:func:`wx_login_required` for class-based views; list it before ``View`` (or the
    generic view) in the bases, as Django's ``LoginRequiredMixin``. Works for async views
    (``async def get``) too."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        """The view's answer, or the middleware's ``401`` for a request without a session."""
        refused = _refusal(request)
        if refused is None:
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        if cast(Any, self).view_is_async:
            # An async view's dispatch returns an awaitable, as Django's View.options does.
            async def answer() -> HttpResponse:
                return refused

            return answer()
        return refused
