"""The CORS protocol, as far as the middleware speaks it: preflights, and the policy
(``cors_origins``) for the answers it gives itself.

References are to the WHATWG Fetch standard: section 3.2 "CORS protocol" (3.2.2 the
request headers, 3.2.3 the response headers, 3.2.5 credentials) and section 4.8
"CORS-preflight fetch".

- A **preflight** is an ``OPTIONS`` request with ``Origin`` and
  ``Access-Control-Request-Method`` (3.2.2). Browsers send it without credentials (4.8:
  no ``3rd-session`` header), so an auth layer that refuses it refuses the real request
  too. A bare ``OPTIONS`` is an ordinary request.
- The **policy** answers the preflights to the login and logout paths, and adds
  ``Access-Control-Allow-Origin`` to every answer of the middleware's own (logins, logouts,
  every error), so a page can read them. The token travels in a header, never in a cookie,
  so no answer carries ``Access-Control-Allow-Credentials`` (3.2.5): with ``*`` the answer
  is a literal ``*``; with a list, the request's origin when it is listed (compared
  exactly, as browsers serialise it: lower case, no trailing slash). Every answer the
  middleware gives under a policy says ``Vary: Origin``: it depends on that header.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

from ..config import WxConfig, header_key
from ._responses import Response
from ._routing import RequestKind, login_methods
from ._view import WAFER_CODE_HEADER, WAFER_ENCRYPTED_DATA_HEADER, WAFER_IV_HEADER, HeaderMap

#: Seconds a browser may keep a preflight answer (``Access-Control-Max-Age``; Chromium
#: keeps one at most 7200 s, Firefox 86400 s).
PREFLIGHT_MAX_AGE = 600

#: Response headers a page may read beyond the CORS-safelisted ones (Fetch 3.2.3): when to
#: retry a ``429``, and the auth scheme of a ``401``.
EXPOSED_HEADERS = "Retry-After, WWW-Authenticate"

_VARY = ("Vary", "Origin")


class Cors:
    """Preflight detection and the ``cors_origins`` policy for one configuration.

    ``key`` turns a normalised header name (``origin``) into a key of the adapter's
    :class:`~._request.HeaderMap` (see :class:`~._request.HeaderNames`); :meth:`header_keys`
    lists the keys this reads, for an adapter that builds its own map. ``active`` is
    whether a policy is set (``cors_origins`` is not empty).
    """

    def __init__(self, config: WxConfig, key: Optional[Callable[[str], str]] = None) -> None:
        keyed = key or (lambda name: name)
        self.origin_key = keyed(header_key("Origin"))
        self.request_method_key = keyed(header_key("Access-Control-Request-Method"))
        origins = config.cors_origins
        self.active = bool(origins)
        self._any = origins == ("*",)
        self._origins = frozenset(origins)
        # Every header a login or logout may send: the token headers, the body's type, and
        # Wafer's login headers when its dialect is on.
        names = [*config.token_headers, "Content-Type"]
        if config.wafer_compat:
            names += [WAFER_CODE_HEADER, WAFER_ENCRYPTED_DATA_HEADER, WAFER_IV_HEADER]
        allow_headers = ("Access-Control-Allow-Headers", ", ".join(dict.fromkeys(names)))
        max_age = ("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE))
        login = (
            "Access-Control-Allow-Methods",
            ", ".join(login_methods(config, config.wafer_compat)),
        )
        logout = ("Access-Control-Allow-Methods", "POST")
        # A near miss of a path is allowed what the path is, so the page can read its 404.
        self._preflight: Dict[RequestKind, Tuple[Tuple[str, str], ...]] = {
            kind: (methods, allow_headers, max_age, _VARY)
            for kind, methods in (
                (RequestKind.LOGIN, login),
                (RequestKind.NEAR_LOGIN, login),
                (RequestKind.LOGOUT, logout),
                (RequestKind.NEAR_LOGOUT, logout),
            )
        }

    def header_keys(self) -> Tuple[str, str]:
        """The header-map keys this reads: ``Origin``, ``Access-Control-Request-Method``."""
        return (self.origin_key, self.request_method_key)

    def is_preflight(self, headers: HeaderMap) -> bool:
        """Whether an ``OPTIONS`` request with ``headers`` is a CORS preflight (Fetch
        3.2.2): it names both its ``Origin`` and the method it asks for."""
        return bool(headers.get(self.origin_key)) and bool(headers.get(self.request_method_key))

    def allowed_origin(self, headers: HeaderMap) -> Optional[str]:
        """The ``Access-Control-Allow-Origin`` value for a request, or ``None`` when it has no
        ``Origin`` or one the policy does not list (or no policy is set)."""
        origin = headers.get(self.origin_key)
        if not origin or not self.active:
            return None
        if self._any:
            return "*"
        # A repeated Origin arrives joined by a comma and matches no listed origin.
        return origin if origin in self._origins else None

    def preflight_response(self, kind: RequestKind, headers: HeaderMap) -> Response:
        """The policy's ``204`` to a preflight of the login or logout path (or a near miss).

        For a listed origin it allows that path's methods and every header its requests
        send, for :data:`PREFLIGHT_MAX_AGE` seconds; for another origin it allows nothing,
        and the browser refuses the real request. Whatever was asked for, the answer is the
        same: the browser compares (Fetch 4.8).
        """
        allowed = self.allowed_origin(headers)
        if allowed is None:
            return Response(204, (_VARY,), b"")
        return Response(
            204, (("Access-Control-Allow-Origin", allowed), *self._preflight[kind]), b""
        )

    def decorate(self, response: Response, headers: HeaderMap) -> Response:
        """``response`` (an answer of the middleware's own) with the policy's headers for a
        request with ``headers``: ``Vary: Origin``, and for a listed origin
        ``Access-Control-Allow-Origin`` and ``Access-Control-Expose-Headers``."""
        allowed = self.allowed_origin(headers)
        if allowed is None:
            added: Tuple[Tuple[str, str], ...] = (_VARY,)
        else:
            added = (
                ("Access-Control-Allow-Origin", allowed),
                ("Access-Control-Expose-Headers", EXPOSED_HEADERS),
                _VARY,
            )
        return Response(response.status, (*response.headers, *added), response.body)
