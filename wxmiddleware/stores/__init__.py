"""Session stores: one protocol, its async twin, and the stores that implement it.

:func:`open_store` turns a store URL (``WX_SESSION_STORE``) into a store.
"""

from __future__ import annotations

import re
from typing import Optional

from ..errors import ConfigError
from .base import PENDING, AsyncSessionStore, SessionInfo, SessionStore
from .memory import MemoryStore
from .sqlite import SQLiteStore, default_sqlite_path

__all__ = [
    "PENDING",
    "AsyncSessionStore",
    "MemoryStore",
    "SQLiteStore",
    "SessionInfo",
    "SessionStore",
    "default_sqlite_path",
    "open_store",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_SQLITE_PREFIX = "sqlite:///"
_SUPPORTED = "use sqlite:///path or memory://"


def open_store(url: Optional[str], appid: str) -> SessionStore:
    """Open the store a URL names.

    - ``None`` (or ``""``): an :class:`SQLiteStore` at :func:`default_sqlite_path` for ``appid``.
    - ``sqlite:///relative/path`` or ``sqlite:////absolute/path``: an :class:`SQLiteStore`.
      As in SQLAlchemy, the path is everything after the third slash, so an absolute path
      gives four slashes; a relative path is resolved against the working directory now.
    - ``memory://``: a :class:`MemoryStore` (one process only).

    Raises :class:`~wxmiddleware.errors.ConfigError` for any other URL. Errors name only the
    URL's scheme, never the rest, which may hold a password.
    """
    if not url:
        return SQLiteStore(default_sqlite_path(appid))
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    if scheme == "sqlite":
        path = url[len(_SQLITE_PREFIX) :] if url.lower().startswith(_SQLITE_PREFIX) else ""
        if not path or "?" in path or "#" in path:
            raise ConfigError(
                "sqlite store URLs take the form sqlite:///relative/path"
                " or sqlite:////absolute/path, without a query"
            )
        return SQLiteStore(path)
    if scheme == "memory":
        return MemoryStore()
    if scheme in ("redis", "rediss"):
        # REDIS: once wxmiddleware[redis] lands, return a RedisStore built from the URL here
        # (and add redis:// to _SUPPORTED).
        raise ConfigError(
            "Redis stores arrive with wxmiddleware[redis] in a later release;"
            f" for now, {_SUPPORTED}"
        )
    if not scheme:
        raise ConfigError(f"the session store URL has no scheme; {_SUPPORTED}")
    raise ConfigError(f"unsupported session store URL scheme {scheme!r}; {_SUPPORTED}")
