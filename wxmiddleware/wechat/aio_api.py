"""WeChat's server APIs for asyncio: :class:`AsyncWxApi` and :class:`AsyncAccessTokenManager`.

The asynchronous twins of :mod:`wxmiddleware.wechat.api`: the same flows, performed with an
:class:`~wxmiddleware.stores.base.AsyncSessionStore` and an :class:`AsyncWeChatClient`
(``pip install "wxmiddleware[asgi]"``). Nothing blocks the event loop: a process waiting for
another's token refresh sleeps with ``asyncio.sleep``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, TypeVar

from .._perform import AsyncPerformer
from ..config import WxConfig
from ..session import WxSession
from ..stores.base import AsyncSessionStore
from ._protocol import ApiRequest
from ._server_api import (
    REFRESH_MARGIN_SECONDS,
    OpenDataHelpers,
    TokenPolicy,
    access_token_flow,
    api_call_flow,
    check_session_request,
    invalidate_flow,
    parse_check_session,
    parse_phone_number,
    phone_number_request,
)
from .aio import AsyncWeChatClient

if TYPE_CHECKING:
    import httpx

__all__ = ["AsyncAccessTokenManager", "AsyncWxApi"]

_T = TypeVar("_T")


class AsyncAccessTokenManager:
    """The asynchronous twin of :class:`~wxmiddleware.wechat.api.AccessTokenManager`.

    ``http`` is an ``httpx.AsyncClient`` to use in whatever loop calls; by default one is
    created per event loop, inside it, on first use.
    """

    def __init__(
        self,
        config: WxConfig,
        store: AsyncSessionStore,
        http: Optional[httpx.AsyncClient] = None,
        *,
        stable: bool = True,
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
    ) -> None:
        self.config = config
        self.store = store
        self._policy = TokenPolicy(config, stable=stable, refresh_margin=refresh_margin)
        self._wechat = AsyncWeChatClient(config, http)
        self._performer: AsyncPerformer[None] = AsyncPerformer(store, self._wechat)

    async def get(self) -> str:
        """See :meth:`AccessTokenManager.get`."""
        return await self._performer.run(access_token_flow(self._policy))

    async def invalidate(self, token: str) -> None:
        """See :meth:`AccessTokenManager.invalidate`."""
        await self._performer.run(invalidate_flow(self._policy, token))

    async def call(self, request: ApiRequest, parse: Callable[[int, bytes], _T]) -> _T:
        """See :meth:`AccessTokenManager.call`."""
        return await self._performer.run(api_call_flow(self._policy, request, parse))

    async def aclose(self) -> None:
        """Close the HTTP client made for the running loop (the store is the caller's)."""
        await self._wechat.aclose()


class AsyncWxApi(OpenDataHelpers):
    """The asynchronous twin of :class:`~wxmiddleware.wechat.api.WxApi`, for ASGI apps.

    ``store`` is an asynchronous store; give it the middleware's, so every worker shares
    one access token.
    """

    def __init__(
        self,
        config: WxConfig,
        store: AsyncSessionStore,
        http: Optional[httpx.AsyncClient] = None,
        *,
        stable_token: bool = True,
    ) -> None:
        super().__init__(config)
        self.tokens = AsyncAccessTokenManager(config, store, http, stable=stable_token)

    async def access_token(self) -> str:
        """See :meth:`WxApi.access_token`."""
        return await self.tokens.get()

    async def check_session(self, session: WxSession) -> bool:
        """See :meth:`WxApi.check_session`."""
        return await self.tokens.call(check_session_request(session), parse_check_session)

    async def get_phone_number(self, phone_code: str) -> Dict[str, Any]:
        """See :meth:`WxApi.get_phone_number`."""
        return await self.tokens.call(phone_number_request(phone_code), parse_phone_number)

    async def aclose(self) -> None:
        """Close the HTTP client made for the running loop."""
        await self.tokens.aclose()
