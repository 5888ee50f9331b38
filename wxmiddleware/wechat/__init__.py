"""WeChat API clients: pure protocol code plus thin sync and async I/O around it.

- :class:`WeChatClient`: jscode2session, for the middleware.
- :class:`WxApi` and :class:`AccessTokenManager`: the server APIs an app calls itself
  (access token, checksession, phone numbers, open data), synchronously.
- :class:`AsyncWxApi` and :class:`AsyncAccessTokenManager`: the same for asyncio
  (``pip install "wxmiddleware[asgi]"``).
- :class:`ApiRequest` and :func:`parse_reply`: for an API those do not wrap, sent with
  ``AccessTokenManager.call`` (the shared token, and its one retry when WeChat refuses it).
"""

from typing import TYPE_CHECKING, Any

from ._protocol import CodeSession
from ._server_api import AccessTokenRejected, ApiRequest, parse_reply
from .api import AccessTokenManager, WxApi
from .sync import WeChatClient

if TYPE_CHECKING:
    from .aio_api import AsyncAccessTokenManager, AsyncWxApi

__all__ = [
    "AccessTokenManager",
    "AccessTokenRejected",
    "ApiRequest",
    "AsyncAccessTokenManager",
    "AsyncWxApi",
    "CodeSession",
    "WeChatClient",
    "WxApi",
    "parse_reply",
]


def __getattr__(name: str) -> Any:
    # The asynchronous classes need httpx (wxmiddleware[asgi]); synchronous users never import it.
    if name in ("AsyncWxApi", "AsyncAccessTokenManager"):
        from . import aio_api

        return getattr(aio_api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
