"""The one-time codes the fake WeChat hands out: ``wx.login()``'s and ``getPhoneNumber``'s.

Times are ``time.monotonic()`` seconds, passed in by the caller, who also holds the lock that
guards this state. A refusal raises :class:`WeChatError` with WeChat's errcode.
"""

from __future__ import annotations

import collections
import secrets
import string
from dataclasses import dataclass
from typing import Deque, Dict, Optional

from ._replies import WeChatError

_CODE_ALPHABET = string.ascii_letters + string.digits


@dataclass
class _LoginCode:
    user: str
    expires_at: float
    appid: str = ""
    used: bool = False


@dataclass
class PhoneCode:
    """A ``getPhoneNumber`` code's number: ``phone`` without and ``country_code`` without
    ``+``, issued for ``user``."""

    user: str
    phone: str
    country_code: str
    expires_at: float
    used: bool = False


class LoginCodes:
    """Login codes (32 letters and digits, single-use, expiring) and each user's minute quota."""

    def __init__(self) -> None:
        self._codes: Dict[str, _LoginCode] = {}
        self._logins: Dict[str, Deque[float]] = {}

    def issue(self, user: str, now: float, ttl: float, appid: str = "") -> str:
        """A fresh code for ``user`` of the app ``appid``, valid ``ttl`` seconds from ``now``."""
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(32))
        # Expired codes answer 40029 whether used or not, so they need not be kept.
        for stale in [c for c, issued in self._codes.items() if issued.expires_at <= now]:
            del self._codes[stale]
        self._codes[code] = _LoginCode(user, now + ttl, appid)
        return code

    def claim(
        self, code: Optional[str], now: float, limit: int, window: float, appid: str = ""
    ) -> str:
        """Use ``code`` up and return its user.

        Refused: unknown, expired or another app's than ``appid`` (40029), already used
        (40163), or the user's logins within the last ``window`` seconds, this one included,
        exceed ``limit`` (45011). A refused code stays usable.
        """
        issued = self._codes.get(code) if code else None
        if issued is None or issued.expires_at <= now or issued.appid != appid:
            raise WeChatError(40029)
        if issued.used:
            raise WeChatError(40163)
        logins = self._logins.setdefault(issued.user, collections.deque())
        while logins and logins[0] <= now - window:
            logins.popleft()
        logins.append(now)
        if len(logins) > limit:
            raise WeChatError(45011)
        issued.used = True
        return issued.user

    def forget_quotas(self) -> None:
        """Start every user's minute quota afresh."""
        self._logins.clear()


class PhoneCodes:
    """``getPhoneNumber`` codes (64 hex digits, single-use, expiring)."""

    def __init__(self) -> None:
        self._codes: Dict[str, PhoneCode] = {}

    def issue(self, user: str, phone: str, country_code: str, expires_at: float) -> str:
        """A fresh code for ``user``'s ``phone``, valid until ``expires_at``."""
        code = secrets.token_hex(32)
        self._codes[code] = PhoneCode(user, phone, country_code, expires_at)
        return code

    def find_unused(self, code: str, now: float) -> PhoneCode:
        """What ``code`` was issued for, if unused and unexpired; else 40029.

        The caller sets ``used`` once the rest of the request passes its checks.
        """
        issued = self._codes.get(code)
        if issued is None or issued.used or issued.expires_at <= now:
            raise WeChatError(40029)
        return issued
