"""The fake WeChat's state, its constants and the ids it derives for a user: what the groups
of its APIs (:mod:`._model_login`, :mod:`._model_tokens`, :mod:`._model_user`) share, and
:class:`~wxmiddleware.testing.model.WeChatModel` combines.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Set, Tuple

from ._access_tokens import AccessTokens
from ._codes import LoginCodes, PhoneCodes
from ._replies import WeChatError
from ._requests import RecordedCall
from ._security import FakeApiSecurity
from .faults import Fault


def new_session_key() -> str:
    """A session_key as WeChat makes one: 16 random bytes, base64."""
    return base64.b64encode(secrets.token_bytes(16)).decode("ascii")


def derived_id(prefix: str, material: str) -> str:
    """A stable id of 28 characters: ``prefix`` and the start of ``material``'s hash."""
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    return prefix + base64.urlsafe_b64encode(digest).decode("ascii")[:27]


class ModelBase:
    """The state of :class:`~wxmiddleware.testing.model.WeChatModel` (whose docstring says
    how the fake answers), its constants, and the openid and unionid of a user. Every
    method may be called from any thread.
    """

    CODE_TTL = 300.0
    """Seconds a code from :meth:`issue_code` stays valid, as with ``wx.login()``."""
    RATE_LIMIT = 100
    """Logins per user allowed within :attr:`RATE_WINDOW` seconds."""
    RATE_WINDOW = 60.0
    """Seconds of the sliding window in which :attr:`RATE_LIMIT` applies."""
    DEFAULT_APPID = "wx0123456789abcdef"
    DEFAULT_SECRET = "fake-secret-0123456789"  # noqa: S105 (the fake's own secret)
    ACCESS_TOKEN_TTL = 7200
    """Seconds an access token is valid (the ``expires_in`` of a new one)."""
    ENCRYPT_KEY_TTL = 3600
    """Seconds a user encryption key of ``getuserencryptkey`` lives."""
    TOKEN_OVERLAP = 300.0
    """Seconds a token stays valid after its successor: the old ``/cgi-bin/token`` token
    after a new fetch, and the window in which stable_token hands out the next one."""

    session_key_factory: Callable[[], str] = staticmethod(new_session_key)
    """Makes the session_key of each login: ``() -> str``, base64 of 16 bytes as WeChat's.

    WeChat encrypts a user's data under the session_key that the login then returns, so a test
    that sends encrypted user info must know the key in advance: give a factory to the
    constructor, or set this attribute on one fake or on the class for every fake.
    """

    def __init__(
        self,
        appid: str = DEFAULT_APPID,
        secret: str = DEFAULT_SECRET,
        *,
        unionid: bool = True,
        latency: float = 0.0,
        session_key_factory: Optional[Callable[[], str]] = None,
        apps: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.appid = appid
        self.secret = secret
        # appid -> secret of every app the fake serves ("" for one only a platform logs in)
        self._secrets: Dict[str, str] = {appid: secret, **(apps or {})}
        # component_access_token -> (component_appid, the appids that authorised it)
        self._components: Dict[str, Tuple[str, Set[str]]] = {}
        self.unionid = unionid
        self.latency = latency
        if session_key_factory is not None:
            self.session_key_factory = session_key_factory
        self._initial_latency = latency
        self._lock = threading.Lock()
        self._login_codes = LoginCodes()
        self._phone_codes = PhoneCodes()
        self._access_tokens: Dict[str, AccessTokens] = {}
        # openid -> the session_key of its latest login (what checksession accepts)
        self._session_keys: Dict[str, str] = {}
        # openid -> its encryption keys, oldest first, each with its monotonic birth time
        self._encrypt_keys: Dict[str, List[Dict[str, Any]]] = {}
        self._faults: Dict[str, Deque[Fault]] = {}
        self._calls: List[RecordedCall] = []
        # plugin login code -> (user, monotonic expiry); spent codes are removed
        self._plugin_codes: Dict[str, Tuple[str, float]] = {}
        # hex sha256 of encryptedData WeChat "made" -> its create_time (Unix seconds)
        self._encrypted_data: Dict[str, int] = {}
        #: WeChat's server-API security, once :meth:`enable_api_security` switched it on.
        self.api_security: Optional[FakeApiSecurity] = None

    def openid_for(self, user: str, appid: Optional[str] = None) -> str:
        """The openid WeChat reports for ``user`` in the app ``appid`` (default:
        :attr:`appid`): 28 characters starting ``o``."""
        return derived_id("o", f"openid:{appid or self.appid}:{user}")

    def serves(self, appid: str) -> bool:
        """Whether ``appid`` is one of the apps this fake accepts (its own or ``apps``)."""
        return appid in self._secrets

    def unionid_for(self, user: str) -> Optional[str]:
        """The unionid for ``user``, or ``None`` when the fake runs with ``unionid=False``.

        Unlike the openid it does not depend on the appid: a unionid is the same user across
        every app bound to one open-platform account.
        """
        return derived_id("u", f"unionid:{user}") if self.unionid else None

    def _check_credentials(
        self, appid: object, secret: object, grant_type: object, expected_grant_type: str
    ) -> None:
        """Refuse a wrong appid (40013), secret (40125) or ``grant_type`` (40002), in turn."""
        known = self._secrets.get(appid) if isinstance(appid, str) else None
        if known is None:
            raise WeChatError(40013)
        if not known or secret != known:
            raise WeChatError(40125)
        if grant_type != expected_grant_type:
            raise WeChatError(40002)
