"""WeChat's server APIs for asyncio: :class:`AsyncWxApi` and :class:`AsyncAccessTokenManager`.

The asynchronous twins of :mod:`wxmiddleware.wechat.api`: the same flows, performed with an
:class:`~wxmiddleware.stores.base.AsyncSessionStore` and an :class:`AsyncWeChatClient`
(``pip install "wxmiddleware[asgi]"``). Nothing blocks the event loop: a process waiting for
another's token refresh sleeps with ``asyncio.sleep``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, TypeVar

import aiohttp

from .._perform import AsyncPerformer
from ..session import WxSession
from ..stores.base import AsyncSessionStore
from . import _access_token as token_flows
from . import _api_login as login_api
from . import _api_user_info as user_info_api
from . import _server_api as call_flows
from ._facades import TokenManagerBase, WxApiBase, session_appid
from ._protocol import ApiRequest
from .aio import AsyncWeChatClient

__all__ = ["AsyncAccessTokenManager", "AsyncWxApi"]

_T = TypeVar("_T")


class AsyncAccessTokenManager(TokenManagerBase[AsyncSessionStore, aiohttp.ClientSession]):
    """The asynchronous twin of :class:`~wxmiddleware.wechat.api.AccessTokenManager`.

    ``http`` is an ``aiohttp.ClientSession`` to send with (it stays the caller's to close);
    by default one is created per event loop, inside it, on first use.
    """

    transport_class = AsyncWeChatClient
    performer_class = AsyncPerformer
    _performer: AsyncPerformer[None]

    async def get(self, appid: Optional[str] = None) -> str:
        """See :meth:`AccessTokenManager.get`."""
        return await self._performer.run(token_flows.access_token_flow(self._policy(appid)))

    async def invalidate(self, token: str, appid: Optional[str] = None) -> None:
        """See :meth:`AccessTokenManager.invalidate`."""
        await self._performer.run(token_flows.invalidate_flow(self._policy(appid), token))

    async def call(
        self, request: ApiRequest, parse: Callable[[int, bytes], _T], appid: Optional[str] = None
    ) -> _T:
        """See :meth:`AccessTokenManager.call`."""
        return await self._performer.run(
            call_flows.api_call_flow(self._policy(appid), request, parse)
        )

    async def aclose(self) -> None:
        """Close the HTTP client made for the running loop (the store is the caller's)."""
        await self._wechat.aclose()


class AsyncWxApi(WxApiBase[AsyncSessionStore, aiohttp.ClientSession, AsyncAccessTokenManager]):
    """The asynchronous twin of :class:`~wxmiddleware.wechat.api.WxApi`, for ASGI apps.

    ``store`` is an asynchronous store; give it the middleware's, so every worker shares
    one access token.
    """

    manager_class = AsyncAccessTokenManager

    async def access_token(self, appid: Optional[str] = None) -> str:
        """See :meth:`WxApi.access_token`."""
        return await self.tokens.get(appid)

    async def check_session(self, session: WxSession) -> bool:
        """See :meth:`WxApi.check_session`."""
        return await self.tokens.call(
            login_api.check_session_request(session),
            login_api.parse_check_session,
            session_appid(session),
        )

    async def reset_session_key(self, session: WxSession) -> WxSession:
        """See :meth:`WxApi.reset_session_key`."""
        return await self.tokens._performer.run(
            call_flows.reset_session_key_flow(self.tokens._policy(session_appid(session)), session)
        )

    async def user_encrypt_keys(self, session: WxSession) -> List[user_info_api.UserEncryptKey]:
        """See :meth:`WxApi.user_encrypt_keys`."""
        return await self.tokens.call(
            user_info_api.user_encrypt_keys_request(session),
            user_info_api.parse_user_encrypt_keys,
            session_appid(session),
        )

    async def get_phone_number(
        self, phone_code: str, appid: Optional[str] = None
    ) -> Dict[str, Any]:
        """See :meth:`WxApi.get_phone_number`."""
        return await self.tokens.call(
            user_info_api.phone_number_request(phone_code), user_info_api.parse_phone_number, appid
        )

    async def check_encrypted_data(
        self, encrypted_data: str, appid: Optional[str] = None
    ) -> user_info_api.EncryptedDataCheck:
        """See :meth:`WxApi.check_encrypted_data`."""
        return await self.tokens.call(
            user_info_api.check_encrypted_data_request(encrypted_data),
            user_info_api.parse_check_encrypted_data,
            appid,
        )

    async def plugin_openpid(self, code: str, appid: Optional[str] = None) -> str:
        """See :meth:`WxApi.plugin_openpid`."""
        return await self.tokens.call(
            user_info_api.plugin_openpid_request(code), user_info_api.parse_plugin_openpid, appid
        )

    async def aclose(self) -> None:
        """Close the HTTP client made for the running loop."""
        await self.tokens.aclose()
