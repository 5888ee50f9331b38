"""The platform suites run every test once per adapter (``[wsgi]``, ``[asgi]``) and, where
sessions are kept, over every store: memory, SQLite and Redis in the default envs, PostgreSQL
and MySQL/MariaDB in the ``sql`` env (tox.ini selects them by their ids, ``postgresql`` and
``mysql``, which the other envs deselect)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.middleware.conftest import adapter, app, make_app
from tests.middleware.stubs import WSGI, memory_store, sqlite_store

__all__ = ["adapter", "app", "make_app", "store"]

STORES = ["memory", "sqlite", "redis", "postgresql", "mysql"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, adapter: str, tmp_path: Path) -> Iterator[Any]:
    """A store of the adapter's kind, under a key or table prefix of its own; the driver
    that uses it closes it, then its Redis keys or SQL tables are deleted."""
    kind = request.param
    if kind == "memory":
        yield memory_store(adapter)
    elif kind == "sqlite":
        yield sqlite_store(adapter, tmp_path / "sessions.sqlite3")
    elif kind == "redis":
        from tests.redis_support import SHARED_URL, delete_prefixed, shared_client, unique_prefix
        from wxmiddleware.stores.redis import AsyncRedisStore, RedisStore

        client = shared_client()
        prefix = unique_prefix()
        redis_kind = RedisStore if adapter == WSGI else AsyncRedisStore
        yield redis_kind.from_url(SHARED_URL, key_prefix=prefix)
        delete_prefixed(client, prefix)
        client.close()
    else:
        from tests import sql_support

        sql = sql_support.sql_module()
        url = sql_support.URLS[kind]
        sql_support.answering(url)
        table_prefix = sql_support.unique_prefix()
        sql_kind = sql.SQLStore if adapter == WSGI else sql.AsyncSQLStore
        yield sql_kind.from_url(url, table_prefix=table_prefix)
        sql_support.drop_tables(url, table_prefix)
