"""WeChat mini-program login as drop-in WSGI and ASGI middleware.

Every public name but the configuration, the session and the error classes (which load no
I/O library) is imported on first use: ``import wxmiddleware.core`` (the decision core) loads
no I/O library, WSGI users never load aiohttp, and only Redis users load redis-py.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any, List

from .config import WxConfig
from .errors import (
    BadRequest,
    ConfigError,
    InvalidCode,
    InvalidSession,
    RateLimited,
    StoreUnavailable,
    UpstreamBusy,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    UserBlocked,
    WxError,
)
from .session import WxSession

if TYPE_CHECKING:
    from ._accessors import session_of
    from .asgi import WxASGIMiddleware
    from .crypto import DecryptError
    from .stores import AsyncSessionStore, MemoryStore, SessionStore, SQLiteStore, open_store
    from .stores.aio import AsyncMemoryStore, AsyncSQLiteStore, open_async_store
    from .stores.redis import AsyncRedisStore, RedisStore
    from .wechat import AccessTokenRejected
    from .wechat.aio_api import AsyncWxApi
    from .wechat.api import WxApi
    from .wsgi import WxMiddleware

__all__ = [
    "AccessTokenRejected",
    "AsyncMemoryStore",
    "AsyncRedisStore",
    "AsyncSQLiteStore",
    "AsyncSessionStore",
    "AsyncWxApi",
    "BadRequest",
    "ConfigError",
    "DecryptError",
    "InvalidCode",
    "InvalidSession",
    "MemoryStore",
    "RateLimited",
    "RedisStore",
    "SQLiteStore",
    "SessionStore",
    "StoreUnavailable",
    "UpstreamBusy",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "UserBlocked",
    "WxASGIMiddleware",
    "WxApi",
    "WxConfig",
    "WxError",
    "WxMiddleware",
    "WxSession",
    "open_async_store",
    "open_store",
    "session_of",
]
__version__ = "0.1.0"

# Where each lazily imported public name lives.
_LAZY = {
    "WxMiddleware": ".wsgi",
    "WxASGIMiddleware": ".asgi",  # needs aiohttp: wxmiddleware[asgi]
    "MemoryStore": ".stores",
    "SQLiteStore": ".stores",
    "SessionStore": ".stores",
    "AsyncSessionStore": ".stores",
    "AsyncMemoryStore": ".stores.aio",
    "AsyncSQLiteStore": ".stores.aio",
    "RedisStore": ".stores.redis",  # needs redis-py: wxmiddleware[redis]
    "AsyncRedisStore": ".stores.redis",
    "WxApi": ".wechat.api",
    "AsyncWxApi": ".wechat.aio_api",  # needs aiohttp
    "AccessTokenRejected": ".wechat",
    "DecryptError": ".crypto",
    "open_store": ".stores",
    "open_async_store": ".stores.aio",
    "session_of": "._accessors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)


def __dir__() -> List[str]:
    return sorted(__all__)
