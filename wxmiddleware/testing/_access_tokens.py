"""The access tokens the fake WeChat has issued, and WeChat's rules for replacing them.

Times are ``time.monotonic()`` seconds, passed in by the caller, who also holds the lock that
guards this state. A refusal raises :class:`WeChatError` with WeChat's errcode.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ._replies import WeChatError

_TOKEN_BYTES = 110  # token_urlsafe(110): about 150 URL-safe characters, like real tokens


@dataclass
class _IssuedToken:
    expires_at: float
    replaced: bool = False  # by a force_refresh: it answers 40001 as an unknown one would


class AccessTokens:
    """Every token issued so far, and the latest of each endpoint.

    ``/cgi-bin/token`` and ``/cgi-bin/stable_token`` hand out independent tokens, as at WeChat.
    ``ttl`` is a new token's lifetime and ``overlap`` how long a token outlives its successor,
    both in seconds; the caller passes them on every call so that a test may change them.
    """

    def __init__(self) -> None:
        self._issued: Dict[str, _IssuedToken] = {}
        self._latest_plain = ""
        self._latest_stable = ""

    @property
    def issued(self) -> List[str]:
        """Every token issued so far, live or not, oldest first."""
        return list(self._issued)

    def fetch(self, now: float, ttl: int, overlap: float) -> str:
        """``/cgi-bin/token``: a new token; the previous one stops working ``overlap`` later."""
        previous = self._issued.get(self._latest_plain)
        if previous is not None:
            previous.expires_at = min(previous.expires_at, now + overlap)
        token = self._issue(now, ttl)
        self._latest_plain = token
        return token

    def fetch_stable(
        self, now: float, ttl: int, overlap: float, *, force_refresh: bool
    ) -> Tuple[str, int]:
        """``/cgi-bin/stable_token``: ``(token, seconds it has left)``.

        The current token comes back until no more than ``overlap`` seconds remain; then a
        new one is issued and the old one lives out its own expiry. ``force_refresh`` issues
        a new one at once and ends the old one.
        """
        current = self._issued.get(self._latest_stable)
        if current is not None and force_refresh:
            current.replaced = True
        elif current is not None and current.expires_at - now > overlap:
            # round(): a difference of floats may fall a hair short of the whole second.
            return self._latest_stable, round(current.expires_at - now)
        self._latest_stable = self._issue(now, ttl)
        return self._latest_stable, ttl

    def check(self, token: Optional[str], now: float) -> None:
        """Refuse a missing (41001), unknown or replaced (40001) or expired (42001) token."""
        if not token:
            raise WeChatError(41001)
        issued = self._issued.get(token)
        if issued is None or issued.replaced:
            raise WeChatError(40001)
        if issued.expires_at <= now:
            raise WeChatError(42001)

    def expire_all(self, now: float) -> None:
        """End every token issued so far: each answers 42001 from ``now`` on."""
        for issued in self._issued.values():
            issued.expires_at = min(issued.expires_at, now)

    def _issue(self, now: float, ttl: int) -> str:
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        self._issued[token] = _IssuedToken(now + ttl)
        return token
