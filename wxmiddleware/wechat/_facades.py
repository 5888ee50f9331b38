"""What the synchronous and asynchronous API clients share, written once.

:class:`~wxmiddleware.wechat.api.AccessTokenManager` and
:class:`~wxmiddleware.wechat.aio_api.AsyncAccessTokenManager` differ only in the transport
and performer they run the flows of :mod:`._access_token` and :mod:`._server_api` with
(``requests`` and a :class:`~wxmiddleware._perform.SyncPerformer`, or ``aiohttp`` and an
``AsyncPerformer``), and :class:`~wxmiddleware.WxApi`/:class:`~wxmiddleware.AsyncWxApi` only
in their manager: each names its parts as class attributes, and the constructors live here.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Generic, Iterable, Optional, TypeVar

from ..config import WxConfig
from ..crypto import SessionOrKey, decrypt_data, verify_signature
from ..errors import ConfigError
from ..observe import Observer, combine
from ..session import WxSession
from ._access_token import REFRESH_MARGIN_SECONDS, TokenPolicy

_Store = TypeVar("_Store")
_Http = TypeVar("_Http")
_Manager = TypeVar("_Manager")


class TokenManagerBase(Generic[_Store, _Http]):
    """The app's access token, shared through ``store`` (the constructor of both managers).

    With several apps (``config.apps``) each has its own token, stored under its appid:
    the methods take ``appid`` (``None``: the one app; with several, a
    :class:`~wxmiddleware.errors.ConfigError` asks for it). An app that logs in through a
    third-party platform has no secret to fetch a token with: asking for one is a
    :class:`~wxmiddleware.errors.ConfigError`.

    ``http`` is the HTTP client the WeChat transport uses (a new one by default);
    ``stable`` selects ``POST /cgi-bin/stable_token`` over ``GET /cgi-bin/token``;
    ``refresh_margin`` is how many seconds before its expiry the token is replaced;
    ``observers`` (:class:`~wxmiddleware.observe.Observer`) time its store and WeChat calls
    and count its token refreshes.
    """

    #: The WeChat transport class (``WeChatClient`` or ``AsyncWeChatClient``).
    transport_class: ClassVar[Any]
    #: The performer class that runs the flows (sync or async).
    performer_class: ClassVar[Any]

    def __init__(
        self,
        config: WxConfig,
        store: _Store,
        http: Optional[_Http] = None,
        *,
        stable: bool = True,
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
        observers: Optional[Iterable[Observer]] = None,
    ) -> None:
        self.config = config
        self.store = store
        self._policies = {
            appid: TokenPolicy(config.for_app(appid), stable=stable, refresh_margin=refresh_margin)
            for appid in config.app_ids
        }
        self._wechat = self.transport_class(config, http)
        self._performer = self.performer_class(store, self._wechat, observer=combine(observers))

    def _policy(self, appid: Optional[str] = None) -> TokenPolicy:
        """The token policy of the app ``appid`` (see the class docstring)."""
        if appid is None or appid == "":
            if self.config.multi_app:
                raise ConfigError(
                    f"several apps are configured ({', '.join(self.config.app_ids)}):"
                    " name the app with appid=..."
                )
            appid = self.config.appid
        policy = self._policies.get(appid)
        if policy is None:
            raise ConfigError(f"app {appid} is not configured")
        if not policy.config.secret:
            raise ConfigError(
                f"app {appid} logs in through a third-party platform: its access token is"
                " the platform's authorizer_access_token, which this package does not fetch"
            )
        return policy


def session_appid(session: SessionOrKey) -> Optional[str]:
    """The app a session belongs to, or ``None`` for a bare session_key (or a session
    recorded before sessions named their app)."""
    return session.appid or None if isinstance(session, WxSession) else None


class WxApiBase(Generic[_Store, _Http, _Manager]):
    """What :class:`~wxmiddleware.WxApi` and its async twin share: the constructor and the
    open-data helpers, which need no I/O.

    ``config`` is the app's :class:`~wxmiddleware.WxConfig`; ``store`` is where the access
    token is shared (give it the middleware's, so every worker uses one token); ``http`` the
    HTTP client; ``stable_token=False`` fetches tokens with ``GET /cgi-bin/token``;
    ``observers`` watch its calls (see :class:`TokenManagerBase`).
    """

    #: The access-token manager class (``AccessTokenManager`` or its async twin).
    manager_class: ClassVar[Any]

    def __init__(
        self,
        config: WxConfig,
        store: _Store,
        http: Optional[_Http] = None,
        *,
        stable_token: bool = True,
        observers: Optional[Iterable[Observer]] = None,
    ) -> None:
        self.config = config
        self.tokens: _Manager = self.manager_class(
            config, store, http, stable=stable_token, observers=observers
        )

    def decrypt(self, session: SessionOrKey, encrypted_data: str, iv: str) -> Dict[str, Any]:
        """Decrypt the mini-program's ``encryptedData`` with the session's key.

        Checks that its watermark names the session's app (the one app, for a bare
        session_key); see
        :func:`wxmiddleware.crypto.decrypt_data` for the errors (``pip install
        "wxmiddleware[crypto]"``).
        """
        return decrypt_data(
            session, encrypted_data, iv, session_appid(session) or self.config.appid
        )

    def verify_signature(self, session: SessionOrKey, raw_data: str, signature: str) -> bool:
        """Whether the mini-program's ``signature`` is ``sha1(rawData + session_key)``."""
        return verify_signature(session, raw_data, signature)
