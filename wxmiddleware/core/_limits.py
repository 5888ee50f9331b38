"""The login rate limits: whose login counts, and what a refused one answers.

The performer's limiter (:mod:`wxmiddleware._ratelimit`, on the ``limits`` library) keeps
the counters; this module decides the client a login is counted for and the answer once a
limit is full. The client is the server's peer address, or, behind ``trusted_proxies``
proxies, the address the nearest trusted proxy saw (werkzeug's ``ProxyFix`` rule): the
``trusted_proxies``-th value of ``X-Forwarded-For`` from the right. Without
``trusted_proxies`` the header is never read: any client can write it.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

from ..config import WxConfig, header_key
from ..errors import RateLimited
from ._effects import Flow, RateCheck
from ._view import RequestView

FORWARDED_FOR = "X-Forwarded-For"


class LoginRateLimited(RateLimited):
    """A login over ``login_rate_limit`` or ``app_login_rate_limit``: ``429`` with
    ``Retry-After`` (seconds), before WeChat is called or anything written."""

    default_message = "Too many logins from here; try again later."


def client_address(view: RequestView, trusted_proxies: int, forwarded_key: str) -> Optional[str]:
    """The client a request is counted for (see the module docstring).

    ``forwarded_key`` is ``X-Forwarded-For``'s key in the view's header map. With fewer
    values in the header than ``trusted_proxies``, the header was not written by the proxies
    and the peer address is used, as ``ProxyFix`` does. ``None`` when there is no address
    (a unix socket without trusted proxies): only the app's budget counts such a login.
    """
    if trusted_proxies:
        forwarded = view.headers.get(forwarded_key)
        if forwarded:
            values = [value.strip() for value in str(forwarded).split(",")]
            if len(values) >= trusted_proxies and values[-trusted_proxies]:
                return values[-trusted_proxies]
    # A unix-socket peer has no address (gunicorn: ""): not a client to count.
    return view.client or None


class LoginLimits:
    """The login rate limits of one configuration (built once, at start-up)."""

    def __init__(self, config: WxConfig, forwarded_key: str) -> None:
        self.trusted_proxies = config.trusted_proxies
        self.forwarded_key = forwarded_key

    @classmethod
    def for_config(
        cls, config: WxConfig, key: Optional[Callable[[str], str]] = None
    ) -> Optional[LoginLimits]:
        """The limits, or ``None`` when ``config`` sets neither ``login_rate_limit`` nor
        ``app_login_rate_limit``. ``key`` maps a normalised header name to the adapter's
        header-map key (as for :class:`~._request.HeaderNames`)."""
        if config.login_rate_limit is None and config.app_login_rate_limit is None:
            return None
        name = header_key(FORWARDED_FOR)
        return cls(config, name if key is None else key(name))

    def header_keys(self) -> Tuple[str, ...]:
        """The header-map keys the limits read: ``X-Forwarded-For`` behind trusted proxies."""
        return (self.forwarded_key,) if self.trusted_proxies else ()

    def check(self, view: RequestView) -> Flow[None]:
        """Count this login; raise :class:`LoginRateLimited` when a limit is full."""
        retry_after = yield RateCheck(
            client_address(view, self.trusted_proxies, self.forwarded_key)
        )
        if retry_after is not None:
            seconds = max(1, math.ceil(retry_after))
            raise LoginRateLimited(headers=[("Retry-After", str(seconds))])
