"""WeChat's server APIs, synchronously: :class:`WxApi` and :class:`AccessTokenManager`.

The decisions (when to refresh the shared token, who refreshes it, when to retry) are the
flows of :mod:`wxmiddleware.wechat._access_token` and :mod:`wxmiddleware.wechat._server_api`;
this module performs their effects with a :class:`~wxmiddleware.stores.base.SessionStore` and
a :class:`WeChatClient`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, TypeVar

import requests

from .._perform import SyncPerformer
from ..session import WxSession
from ..stores.base import SessionStore
from . import _access_token as token_flows
from . import _api_login as login_api
from . import _api_user_info as user_info_api
from . import _server_api as call_flows
from ._facades import TokenManagerBase, WxApiBase, session_appid
from ._protocol import ApiRequest
from .sync import WeChatClient

__all__ = ["AccessTokenManager", "WxApi"]

_T = TypeVar("_T")


class AccessTokenManager(TokenManagerBase[SessionStore, requests.Session]):
    """The app's access token, shared through ``store`` by every process and machine.

    :meth:`get` returns the stored token while it is fresh. Within ``refresh_margin``
    seconds of its expiry one process (holding the store's lock) fetches the next one with
    ``POST /cgi-bin/stable_token`` (or ``GET /cgi-bin/token`` with ``stable=False``) and
    stores it; the others keep using the old token meanwhile, or wait briefly for the new
    one. :meth:`call` makes an API call with the token and, when WeChat refuses it (40001,
    42001), drops it and makes the call once more with a fresh one.

    ``http`` is the ``requests.Session`` to use (a new one by default). Neither the token
    nor the secret ever appears in a log line or an exception message.
    """

    transport_class = WeChatClient
    performer_class = SyncPerformer
    _performer: SyncPerformer[None]

    def get(self, appid: Optional[str] = None) -> str:
        """The access token of the app ``appid`` (fetched, or refreshed, first when needed;
        ``None``: the one app configured)."""
        return self._performer.run(token_flows.access_token_flow(self._policy(appid)))

    def invalidate(self, token: str, appid: Optional[str] = None) -> None:
        """Forget ``token`` of the app ``appid`` after WeChat refused it, so the next
        :meth:`get` fetches another.

        A newer token another process stored meanwhile is kept.
        """
        self._performer.run(token_flows.invalidate_flow(self._policy(appid), token))

    def call(
        self, request: ApiRequest, parse: Callable[[int, bytes], _T], appid: Optional[str] = None
    ) -> _T:
        """Send ``request`` with the access token of the app ``appid``; return
        ``parse(status, body)``.

        Errcode -1 and a failed connection are retried once; a refused token once, with a
        fresh token. Errors are :class:`~wxmiddleware.errors.WxError`.
        """
        return self._performer.run(call_flows.api_call_flow(self._policy(appid), request, parse))

    def close(self) -> None:
        """Close the HTTP connections (the store stays open: it is the caller's)."""
        self._wechat.close()


class WxApi(WxApiBase[SessionStore, requests.Session, AccessTokenManager]):
    """WeChat's server APIs for one mini-program, for WSGI apps and scripts.

    ``store`` is where the access token is shared: give it the middleware's store, so
    every worker uses one token::

        api = WxApi(middleware.config, middleware.store)
        api.get_phone_number(code)

    ``stable_token=False`` fetches tokens with ``GET /cgi-bin/token`` instead of
    ``POST /cgi-bin/stable_token``. Errors are :class:`~wxmiddleware.errors.WxError`, whose
    ``status`` and ``error`` suit a JSON answer.

    With API security keys in the configuration (``WX_API_*``, docs/api-security.md), the
    calls WeChat's security covers (phone numbers, user encryption keys, encrypted data
    checks, plugin openpids) are encrypted and signed, and WeChat's answers verified and
    decrypted; a failure of the security is an
    :class:`~wxmiddleware.wechat._security.ApiSecurityError` (502).
    """

    manager_class = AccessTokenManager

    def access_token(self, appid: Optional[str] = None) -> str:
        """The access token of the app ``appid`` (``None``: the one app configured), for
        WeChat APIs this class does not wrap."""
        return self.tokens.get(appid)

    def check_session(self, session: WxSession) -> bool:
        """Whether ``session``'s session_key is still valid at WeChat (``checksession``).

        ``False`` (errcode 87009) means the user logged in again elsewhere or the key
        expired: data encrypted for the mini-program will not decrypt with it.
        """
        return self.tokens.call(
            login_api.check_session_request(session),
            login_api.parse_check_session,
            session_appid(session),
        )

    def reset_session_key(self, session: WxSession) -> WxSession:
        """Have WeChat issue the user a new session_key (``GET /wxa/resetusersessionkey``),
        store it in all of the user's sessions, and return ``session`` holding it.

        Use it when :meth:`check_session` answers ``False`` for a session whose user has not
        logged in again, before decrypting or signing with its key. A key WeChat no longer
        accepts (87009, 87008) raises :class:`~wxmiddleware.errors.InvalidSession` (401: the
        user must log in again), 45011 :class:`~wxmiddleware.errors.RateLimited` (429), a
        store that is down :class:`~wxmiddleware.errors.StoreUnavailable` (503).
        """
        return self.tokens._performer.run(
            call_flows.reset_session_key_flow(self.tokens._policy(session_appid(session)), session)
        )

    def user_encrypt_keys(self, session: WxSession) -> List[user_info_api.UserEncryptKey]:
        """The user's last three encryption keys (``POST /wxa/business/getuserencryptkey``),
        for data the mini-program encrypted with ``wx.getUserCryptoManager()``; pick the one
        whose ``version`` the message names. Errors as for :meth:`reset_session_key`.
        """
        return self.tokens.call(
            user_info_api.user_encrypt_keys_request(session),
            user_info_api.parse_user_encrypt_keys,
            session_appid(session),
        )

    def get_phone_number(self, phone_code: str, appid: Optional[str] = None) -> Dict[str, Any]:
        """Exchange the code of the mini-program's ``getPhoneNumber`` for the ``phone_info``.

        The code is single-use and lives five minutes; an invalid or used one raises
        :class:`~wxmiddleware.errors.InvalidCode` (401), a missing one
        :class:`~wxmiddleware.errors.BadRequest` (400). ``appid`` names the app the code came
        from when several are configured (the session's ``appid``).
        """
        return self.tokens.call(
            user_info_api.phone_number_request(phone_code), user_info_api.parse_phone_number, appid
        )

    def check_encrypted_data(
        self, encrypted_data: str, appid: Optional[str] = None
    ) -> user_info_api.EncryptedDataCheck:
        """Whether WeChat made the mini-program's ``encryptedData`` (``POST
        /wxa/business/checkencryptedmsg``, which gets its SHA-256, never the data): WeChat
        checks phone number data of the last three days only. Missing or oversized data
        raises :class:`~wxmiddleware.errors.BadRequest` (400) without calling WeChat.
        """
        return self.tokens.call(
            user_info_api.check_encrypted_data_request(encrypted_data),
            user_info_api.parse_check_encrypted_data,
            appid,
        )

    def plugin_openpid(self, code: str, appid: Optional[str] = None) -> str:
        """The plugin user's ``openpid`` for the code of ``wx.pluginLogin`` (``POST
        /wxa/getpluginopenpid``). An invalid or used code raises
        :class:`~wxmiddleware.errors.InvalidCode` (401), a missing one
        :class:`~wxmiddleware.errors.BadRequest` (400)."""
        return self.tokens.call(
            user_info_api.plugin_openpid_request(code), user_info_api.parse_plugin_openpid, appid
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self.tokens.close()
