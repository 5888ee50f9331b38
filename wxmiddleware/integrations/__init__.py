"""Framework-native login: each framework's own auth idioms on top of the middleware.

One module per framework, each importing its framework when it is imported itself (this
package imports none): :mod:`.django` (an installable Django app: a ``MIDDLEWARE`` class, an
authentication backend and a model), :mod:`.drf` (an authentication class), :mod:`.flask`
(the ``WxLogin`` extension), :mod:`.fastapi` (security dependencies), :mod:`.pyramid` (a
security policy) and :mod:`.bottle` (a plugin). None of them decides anything about a
request: the core's pipeline does, in the middleware; they read the session it attached
(:func:`~wxmiddleware.session_of`) and answer a request without one with the core's ``401``
(:func:`unauthorized`).
"""

from __future__ import annotations

from ..core import Response, error_response
from ..errors import InvalidSession

__all__ = ["unauthorized"]


def unauthorized() -> Response:
    """The middleware's own ``401``: ``{"error": "invalid_session", "message": ...}`` JSON
    with ``WWW-Authenticate``, for a route that needs a session on a path where the
    middleware let a request without a valid one through (an optional path)."""
    return error_response(InvalidSession())
