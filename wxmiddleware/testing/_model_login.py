"""The fake WeChat's login APIs: the apps and third-party platforms it serves, login codes,
``/sns/jscode2session`` and ``/sns/component/jscode2session``; part of
:class:`~wxmiddleware.testing.model.WeChatModel`.
"""

from __future__ import annotations

import secrets
import time
from typing import Callable, Dict, Iterable, Optional

from ._model_base import ModelBase
from ._replies import WeChatError


class LoginApis(ModelBase):
    """Apps, third-party platforms and login codes, and the two code exchanges (see
    :class:`~wxmiddleware.testing.model.WeChatModel` for how they answer)."""

    def add_app(self, appid: str, secret: str = "") -> None:
        """Serve one more app; without a ``secret``, only a third-party platform that it
        authorised (:meth:`add_component`) can log its users in."""
        with self._lock:
            self._secrets[appid] = secret

    def add_component(self, component_appid: str, authorized_by: Iterable[str] = ()) -> str:
        """Add a third-party platform that the apps ``authorized_by`` authorised (apps not
        yet served are added without a secret); return its ``component_access_token``."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            apps = set(authorized_by)
            for appid in apps:
                self._secrets.setdefault(appid, "")
            self._components[token] = (component_appid, apps)
        return token

    def issue_code(
        self, user: str = "alice", *, ttl: Optional[float] = None, appid: Optional[str] = None
    ) -> str:
        """Register and return a fresh single-use code for ``user``, as ``wx.login()`` gives
        in the app ``appid`` (default: :attr:`appid`).

        The code is valid for ``ttl`` seconds (default :attr:`CODE_TTL`).
        """
        now = time.monotonic()
        with self._lock:
            return self._login_codes.issue(
                user, now, self.CODE_TTL if ttl is None else ttl, appid or self.appid
            )

    def session_key_for(self, user: str, appid: Optional[str] = None) -> Optional[str]:
        """The session_key WeChat currently holds for ``user`` in the app ``appid``
        (default: :attr:`appid`; the one its latest login or reset issued), or ``None``
        before the user's first login there."""
        with self._lock:
            return self._session_keys.get(self.openid_for(user, appid))

    def _jscode2session(self, single: Callable[[str], Optional[str]], now: float) -> Dict[str, str]:
        self._check_credentials(
            single("appid"), single("secret"), single("grant_type"), "authorization_code"
        )
        return self._log_in(single("appid") or "", single("js_code"), now)

    def _component_jscode2session(
        self, single: Callable[[str], Optional[str]], now: float
    ) -> Dict[str, str]:
        with self._lock:
            component = self._components.get(single("component_access_token") or "")
        if component is None:
            raise WeChatError(40001)
        component_appid, authorized = component
        if single("component_appid") != component_appid:
            raise WeChatError(40013)
        appid = single("appid") or ""
        if appid not in authorized:
            raise WeChatError(61003)
        if single("grant_type") != "authorization_code":
            raise WeChatError(40002)
        return self._log_in(appid, single("js_code"), now)

    def _log_in(self, appid: str, code: Optional[str], now: float) -> Dict[str, str]:
        """Spend ``code`` of the app ``appid``: its user's openid, a new session_key, and
        the unionid."""
        with self._lock:
            user = self._login_codes.claim(code, now, self.RATE_LIMIT, self.RATE_WINDOW, appid)
            answer = {
                "session_key": self.session_key_factory(),
                "openid": self.openid_for(user, appid),
            }
            self._session_keys[answer["openid"]] = answer["session_key"]
        unionid = self.unionid_for(user)
        if unionid is not None:
            answer["unionid"] = unionid
        return answer
