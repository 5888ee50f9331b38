"""WeChat mini-program login as drop-in WSGI and ASGI middleware."""

from typing import TYPE_CHECKING, Any

from .config import WxConfig
from .errors import ConfigError, WxError
from .session import WxSession
from .stores import AsyncSessionStore, MemoryStore, SessionStore, SQLiteStore
from .stores.aio import AsyncMemoryStore, AsyncSQLiteStore
from .wechat.api import WxApi
from .wsgi import WxMiddleware

if TYPE_CHECKING:
    from .asgi import WxASGIMiddleware
    from .stores.redis import AsyncRedisStore, RedisStore
    from .wechat.aio_api import AsyncWxApi

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


def __getattr__(name: str) -> Any:
    # The ASGI middleware needs httpx (wxmiddleware[asgi]); WSGI users never import it.
    if name == "WxASGIMiddleware":
        from .asgi import WxASGIMiddleware

        return WxASGIMiddleware
    # AsyncWxApi needs httpx too.
    if name == "AsyncWxApi":
        from .wechat.aio_api import AsyncWxApi

        return AsyncWxApi
    # The Redis stores need redis-py (wxmiddleware[redis]).
    if name in ("RedisStore", "AsyncRedisStore"):
        from .stores import redis

        return getattr(redis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
