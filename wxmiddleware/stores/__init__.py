"""Session stores: one protocol, its async twin, and the stores that implement it.

:func:`open_store` turns a store URL (``WX_SESSION_STORE``) into a store.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import TYPE_CHECKING, Any, Optional

from ..errors import ConfigError
from .base import AsyncSessionStore, SessionInfo, SessionStore
from .memory import MemoryStore
from .sqlite import SQLiteStore, default_sqlite_path

if TYPE_CHECKING:
    from .redis import AsyncRedisStore, RedisStore
    from .sql import AsyncSQLStore, SQLStore

__all__ = [
    "AsyncRedisStore",
    "AsyncSQLStore",
    "AsyncSessionStore",
    "MemoryStore",
    "RedisStore",
    "SQLStore",
    "SQLiteStore",
    "SessionInfo",
    "SessionStore",
    "default_sqlite_path",
    "open_store",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_SQLITE_PREFIX = "sqlite:///"
_SUPPORTED = "use sqlite:///path, memory://, redis://host:port/db, postgresql://… or mysql://…"
#: Schemes (before any ``+driver``) of the SQL store; ``postgres`` is Heroku's spelling.
SQL_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb")


def store_url_scheme(url: str) -> str:
    """The lower-cased scheme of a store URL, or ``""`` when it has none."""
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else ""


def open_store(url: Optional[str], appid: str) -> SessionStore:
    """Open the store a URL names.

    - ``None`` (or ``""``): an :class:`SQLiteStore` at :func:`default_sqlite_path` for ``appid``.
    - ``sqlite:///relative/path`` or ``sqlite:////absolute/path``: an :class:`SQLiteStore`.
      As in SQLAlchemy, the path is everything after the third slash, so an absolute path
      gives four slashes; a relative path is resolved against the working directory now.
    - ``memory://``: a :class:`MemoryStore` (one process only).
    - ``redis://host:port/db`` or ``rediss://…`` (TLS): a :class:`RedisStore`
      (``pip install "wxmiddleware[redis]"``), with request-path timeouts.
    - ``postgresql://…``, ``mysql://…`` (also ``postgres:``, ``mariadb:``, ``+driver``): a
      :class:`~wxmiddleware.stores.sql.SQLStore` (``pip install "wxmiddleware[sql]"``),
      its schema checked and created now (:func:`wxmiddleware.stores.sql.open_url`).

    Raises :class:`~wxmiddleware.errors.ConfigError` for any other URL, and for an SQLite
    path that cannot work or that another local user could write (:meth:`SQLiteStore.check`,
    which also makes its directory ``0700`` and file ``0600``). Errors name only the URL's
    scheme, never the rest, which may hold a password.
    """
    if not url:
        return _checked(SQLiteStore(default_sqlite_path(appid)))
    scheme = store_url_scheme(url)
    if scheme == "sqlite":
        path = url[len(_SQLITE_PREFIX) :] if url.lower().startswith(_SQLITE_PREFIX) else ""
        if not path or "?" in path or "#" in path:
            raise ConfigError(
                "sqlite store URLs take the form sqlite:///relative/path"
                " or sqlite:////absolute/path, without a query"
            )
        return _checked(SQLiteStore(path))
    if scheme == "memory":
        return MemoryStore()
    if scheme in ("redis", "rediss"):
        store: SessionStore = _redis_stores().RedisStore.from_url(url)
        return store
    if scheme.split("+", 1)[0] in SQL_SCHEMES:
        sql_store: SessionStore = sql_stores().open_url(url)
        return sql_store
    if not scheme:
        raise ConfigError(f"the session store URL has no scheme; {_SUPPORTED}")
    raise ConfigError(f"unsupported session store URL scheme {scheme!r}; {_SUPPORTED}")


def _checked(store: SQLiteStore) -> SQLiteStore:
    store.check()
    return store


def _redis_stores() -> ModuleType:
    try:
        from . import redis
    except ModuleNotFoundError as exc:
        if exc.name != "redis":
            raise
        raise ConfigError(
            'Redis session stores need redis-py: pip install "wxmiddleware[redis]"'
        ) from None
    return redis


def sql_stores() -> ModuleType:
    """:mod:`wxmiddleware.stores.sql`, or a ConfigError naming what to install."""
    try:
        from . import sql
    except ModuleNotFoundError as exc:
        if exc.name not in ("sqlalchemy", "greenlet"):
            raise
        raise ConfigError(
            f'SQL session stores need SQLAlchemy ({exc.name}): pip install "wxmiddleware[sql]"'
        ) from None
    return sql


def __getattr__(name: str) -> Any:
    # The Redis stores import redis-py (wxmiddleware[redis]), so only when first asked for.
    if name in ("RedisStore", "AsyncRedisStore"):
        from . import redis

        return getattr(redis, name)
    if name in ("SQLStore", "AsyncSQLStore"):
        from . import sql

        return getattr(sql, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
