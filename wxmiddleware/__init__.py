"""WeChat mini-program login as drop-in WSGI and ASGI middleware.

Every public name is imported on first use: ``import wxmiddleware.core`` (the decision core)
loads no I/O library, WSGI users never load httpx, and only Redis users load redis-py.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any, List

from .config import WxConfig
from .errors import ConfigError, WxError
from .session import WxSession

if TYPE_CHECKING:
    from .asgi import WxASGIMiddleware
    from .stores import AsyncSessionStore, MemoryStore, SessionStore, SQLiteStore
    from .stores.aio import AsyncMemoryStore, AsyncSQLiteStore
    from .stores.redis import AsyncRedisStore, RedisStore
    from .wechat.aio_api import AsyncWxApi
    from .wechat.api import WxApi
    from .wsgi import WxMiddleware

__all__ = [
    "AsyncMemoryStore",
    "AsyncRedisStore",
    "AsyncSQLiteStore",
    "AsyncSessionStore",
    "AsyncWxApi",
    "ConfigError",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "SessionStore",
    "WxASGIMiddleware",
    "WxApi",
    "WxConfig",
    "WxError",
    "WxMiddleware",
    "WxSession",
]
__version__ = "0.1.0"

# Where each lazily imported public name lives.
_LAZY = {
    "WxMiddleware": ".wsgi",
    "WxASGIMiddleware": ".asgi",  # needs httpx: wxmiddleware[asgi]
    "MemoryStore": ".stores",
    "SQLiteStore": ".stores",
    "SessionStore": ".stores",
    "AsyncSessionStore": ".stores",
    "AsyncMemoryStore": ".stores.aio",
    "AsyncSQLiteStore": ".stores.aio",
    "RedisStore": ".stores.redis",  # needs redis-py: wxmiddleware[redis]
    "AsyncRedisStore": ".stores.redis",
    "WxApi": ".wechat.api",
    "AsyncWxApi": ".wechat.aio_api",  # needs httpx
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)


def __dir__() -> List[str]:
    return sorted(__all__)
