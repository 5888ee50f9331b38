"""One way to read the session from any framework's request object, under WSGI or ASGI."""

from __future__ import annotations

from typing import Any, Optional

from .session import WxSession

#: Where request objects keep what the middleware attached: the ASGI scope (Starlette,
#: FastAPI, Django's ASGIRequest), the WSGI environ (Flask, Bottle, Pyramid, Django's
#: WSGIRequest, WebOb), or Django's META (the environ, under WSGI).
_HOLDERS = ("scope", "environ", "META")


def session_of(request: Any) -> Optional[WxSession]:
    """The :class:`~wxmiddleware.WxSession` the middleware attached to ``request``.

    ``request`` is a framework's request object (Django's ``HttpRequest`` under WSGI or
    ASGI, Flask's or Bottle's ``request``, Pyramid's, Starlette's and FastAPI's
    ``Request``), a WSGI environ or an ASGI scope. Returns ``None`` on an optional path
    without a valid token and on a public path (where nothing is attached); on any other
    path the middleware has already refused a request without a session.
    """
    if isinstance(request, dict):
        found: Optional[WxSession] = request.get("wxmiddleware.session")
        return found
    for holder in _HOLDERS:
        mapping = getattr(request, holder, None)
        if mapping is not None and "wxmiddleware.session" in mapping:
            attached: Optional[WxSession] = mapping["wxmiddleware.session"]
            return attached
    return None
