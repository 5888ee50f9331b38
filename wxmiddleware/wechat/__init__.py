"""WeChat API clients: pure protocol code plus thin sync and async I/O around it.

- :class:`WeChatClient`: the synchronous transport (``requests``); jscode2session for scripts.
- :class:`WxApi` and :class:`AccessTokenManager`: the server APIs an app calls itself
  (access token, checksession, phone numbers, open data), synchronously.
- :class:`AsyncWxApi` and :class:`AsyncAccessTokenManager`: the same for asyncio
  (``pip install "wxmiddleware[asgi]"``).
- :class:`ApiRequest` and :func:`parse_reply`: for an API those do not wrap, sent with
  ``AccessTokenManager.call`` (the shared token, and its one retry when WeChat refuses it).

The clients are imported on first use, so the pure modules (``_protocol``, ``_paths``,
``_api_replies``, ``_server_api`` and the others) load without ``requests`` or ``aiohttp``.
"""

from typing import TYPE_CHECKING, Any

from ._api_replies import AccessTokenRejected, parse_reply
from ._protocol import ApiRequest, CodeSession

if TYPE_CHECKING:
    from .aio_api import AsyncAccessTokenManager, AsyncWxApi
    from .api import AccessTokenManager, WxApi
    from .sync import WeChatClient

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

_LAZY = {
    "AccessTokenManager": "api",
    "WxApi": "api",
    "AsyncAccessTokenManager": "aio_api",
    "AsyncWxApi": "aio_api",
    "WeChatClient": "sync",
}


def __getattr__(name: str) -> Any:
    # requests (sync) and aiohttp (async, wxmiddleware[asgi]) load only when a client is asked for.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
