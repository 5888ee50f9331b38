"""The fake WeChat's access tokens: ``/cgi-bin/token``, ``/cgi-bin/stable_token`` and the
check of the token every other server API carries; part of
:class:`~wxmiddleware.testing.model.WeChatModel`.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Mapping, Optional

from ._access_tokens import AccessTokens
from ._model_base import ModelBase
from ._replies import WeChatError


class AccessTokenApis(ModelBase):
    """Each app's access tokens and the two endpoints that issue them (see
    :class:`~wxmiddleware.testing.model.WeChatModel` for how they answer)."""

    def expire_access_tokens(self) -> None:
        """End every access token issued so far: calls with them answer 42001 (expired).

        The next token request gets a new one, from either endpoint.
        """
        now = time.monotonic()
        with self._lock:
            for tokens in self._access_tokens.values():
                tokens.expire_all(now)

    @property
    def issued_access_tokens(self) -> List[str]:
        """Every access token issued so far, live or not (to check that none leaks)."""
        with self._lock:
            return [token for tokens in self._access_tokens.values() for token in tokens.issued]

    def _tokens_of(self, appid: object) -> AccessTokens:
        """The access tokens of the app ``appid`` (under the lock)."""
        return self._access_tokens.setdefault(str(appid), AccessTokens())

    def _check_access_token(self, token: Optional[str], now: float) -> None:
        """Refuse a token no app was issued (as :meth:`AccessTokens.check` does), under the
        lock."""
        for tokens in self._access_tokens.values():
            if token in tokens.issued:
                tokens.check(token, now)
                return
        AccessTokens().check(token, now)

    def _token(self, single: Callable[[str], Optional[str]], now: float) -> Dict[str, Any]:
        self._check_credentials(
            single("appid"), single("secret"), single("grant_type"), "client_credential"
        )
        with self._lock:
            token = self._tokens_of(single("appid")).fetch(
                now, self.ACCESS_TOKEN_TTL, self.TOKEN_OVERLAP
            )
        return {"access_token": token, "expires_in": self.ACCESS_TOKEN_TTL}

    def _stable_token(self, request: Optional[Mapping[str, Any]], now: float) -> Dict[str, Any]:
        force = None if request is None else request.get("force_refresh", False)
        if request is None or not isinstance(force, bool):
            raise WeChatError(47001)
        self._check_credentials(
            request.get("appid"),
            request.get("secret"),
            request.get("grant_type"),
            "client_credential",
        )
        with self._lock:
            token, expires_in = self._tokens_of(request.get("appid")).fetch_stable(
                now, self.ACCESS_TOKEN_TTL, self.TOKEN_OVERLAP, force_refresh=force
            )
        return {"access_token": token, "expires_in": expires_in}
