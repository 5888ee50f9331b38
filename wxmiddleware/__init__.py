"""WeChat mini-program login as drop-in WSGI and ASGI middleware."""

from .config import WxConfig
from .errors import ConfigError, WxError
from .session import WxSession
from .stores import MemoryStore, SessionStore, SQLiteStore
from .wsgi import WxMiddleware

__all__ = [
    "ConfigError",
    "MemoryStore",
    "SQLiteStore",
    "SessionStore",
    "WxConfig",
    "WxError",
    "WxMiddleware",
    "WxSession",
]
__version__ = "0.1.0"
