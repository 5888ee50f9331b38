"""AsyncSQLStore: the asynchronous twin of :class:`~wxmiddleware.stores.sql.SQLStore`.

Its operations, tables and guarantees are the synchronous store's
(:mod:`wxmiddleware.stores._sql_ops`); what differs is the runner, which awaits each
statement on an ``AsyncConnection``, and the engines: an asyncio driver's connections belong
to the event loop that opened them, so a store built from a URL makes one engine per loop.
Import it from :mod:`wxmiddleware.stores.sql`, whose docstring says what each request costs.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from typing import Any, Callable, List, Literal, Optional, TypeVar, Union

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..errors import ConfigError, StoreUnavailable
from ._sql_engine import DIALECTS, build_engine, dialect_of, shown, store_url
from ._sql_ops import SQLOperations, SQLStoreMethods
from ._sql_schema import DEFAULT_TABLE_PREFIX, Tables, ensure_schema
from ._sql_steps import CONNECT_ERRORS, Marker, Operation, Steps, cause

__all__ = ["AsyncSQLStore"]

_T = TypeVar("_T")


async def _send_async(conn: AsyncConnection, request: Any) -> Any:
    """One statement: its rows (tuples) when it returns rows, else its row count."""
    if isinstance(request, Marker):
        await conn.exec_driver_sql(request.sql)
        return None
    result = await conn.execute(request.statement, request.params)
    return [tuple(row) for row in result] if result.returns_rows else result.rowcount


async def _rollback_async(conn: AsyncConnection, steps: Steps[Any]) -> None:
    steps.in_transaction = False
    try:
        await conn.exec_driver_sql("ROLLBACK")
    except SQLAlchemyError:
        await conn.invalidate()


class AsyncSQLStore(SQLStoreMethods):
    """The asynchronous twin of :class:`~wxmiddleware.stores.sql.SQLStore`, over SQLAlchemy's
    asyncio extension.

    An asyncio driver's connections belong to the event loop that opened them. ``engine``
    is either an ``AsyncEngine`` (used as it is: keep it to one loop), or a callable with no
    arguments that builds one, which the store calls lazily, inside the running loop, once
    per event loop (so the store may be created at import time and used from several
    loops); with a callable, ``dialect`` (``postgresql``, ``mysql`` or ``mariadb``) must be
    given. :meth:`from_url` does the latter. The tables, statements and guarantees are
    :class:`~wxmiddleware.stores.sql.SQLStore`'s: a WSGI app and an ASGI app on one database
    read each other's sessions.
    """

    #: Which runner this store is (:mod:`wxmiddleware.stores._operations`).
    asynchronous: Literal[True] = True

    def __init__(
        self,
        engine: Union[AsyncEngine, Callable[[], AsyncEngine]],
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        create_schema: bool = True,
        dialect: Optional[str] = None,
    ) -> None:
        if isinstance(engine, AsyncEngine):
            dialect = dialect_of(engine)
        elif not callable(engine) or dialect not in DIALECTS:
            raise ConfigError(
                "AsyncSQLStore takes an AsyncEngine, or a callable that builds one and its"
                " dialect (postgresql, mysql or mariadb)"
            )
        assert dialect is not None
        self._dialect = dialect
        self._source = engine
        self._operations = SQLOperations(Tables(table_prefix, dialect))
        self._create = create_schema
        self._schema_ready = False
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEngine] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._shown = shown(engine.url) if isinstance(engine, AsyncEngine) else dialect

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        create_schema: bool = True,
        **options: Any,
    ) -> AsyncSQLStore:
        """A store that builds an ``AsyncEngine`` per event loop from ``url`` (asyncpg or
        aiomysql unless the URL names another asyncio driver).

        Nothing connects until the first call in a running loop, but the driver is loaded
        now: one that is not installed is a :class:`~wxmiddleware.errors.ConfigError`
        naming what to install. ``options`` are as for
        :meth:`SQLStore.from_url <wxmiddleware.stores.sql.SQLStore.from_url>`.
        """
        target = store_url(url, asynchronous=True)
        # Built once now, so that a missing driver fails at start-up; then once per loop.
        build_engine(target, create_async_engine, options).sync_engine.dispose()
        factory = functools.partial(build_engine, target, create_async_engine, options)
        store = cls(
            factory, table_prefix=table_prefix, create_schema=create_schema, dialect=target.dialect
        )
        store._shown = shown(target.url)
        return store

    def __repr__(self) -> str:
        return f"AsyncSQLStore({self._shown!r}, table_prefix={self.table_prefix!r})"

    @property
    def table_prefix(self) -> str:
        """The prefix of the store's table and index names."""
        return self._operations.t.prefix

    def check(self, create: Optional[bool] = None) -> None:
        """:meth:`SQLStore.check <wxmiddleware.stores.sql.SQLStore.check>` for a store
        :meth:`from_url` made, over an engine of its own in a thread of its own (callable
        before any event loop runs). A store over an ``AsyncEngine`` passed in checks its
        schema on first use instead."""
        if isinstance(self._source, AsyncEngine):
            return
        factory = self._source
        make = self._create if create is None else create
        failure: List[BaseException] = []

        async def run() -> None:
            engine = factory()
            try:
                async with engine.connect() as conn:
                    await conn.run_sync(ensure_schema, self._operations.t, make)
            finally:
                await engine.dispose()

        def thread() -> None:
            try:
                asyncio.run(run())
            except BaseException as exc:  # handed to the calling thread
                failure.append(exc)

        worker = threading.Thread(target=thread, name="wxmiddleware-sql-check")
        worker.start()
        worker.join()
        if failure:
            if isinstance(failure[0], CONNECT_ERRORS):
                detail = f"SQL ({self._dialect}): check: {cause(failure[0])}"
                raise StoreUnavailable(detail=detail) from None
            raise failure[0]
        self._schema_ready = True

    def _engine(self) -> AsyncEngine:
        if isinstance(self._source, AsyncEngine):
            return self._source
        loop = asyncio.get_running_loop()
        engine = self._per_loop.get(loop)
        if engine is None:
            with self._lock:
                engine = self._per_loop.get(loop)
                if engine is None:
                    engine = self._source().execution_options(isolation_level="AUTOCOMMIT")
                    self._per_loop[loop] = engine
        return engine

    async def _run(self, start: Callable[..., Operation[_T]], *args: Any, **kwargs: Any) -> _T:
        engine = self._engine()
        for attempt in (1, 2):
            steps = Steps(start(self._operations, *args, **kwargs), start.__name__, self._dialect)
            try:
                conn = await engine.connect()
            except CONNECT_ERRORS as exc:
                raise steps.failure(exc) from None
            try:
                if not self._schema_ready:
                    with steps.preparing():
                        await conn.run_sync(ensure_schema, self._operations.t, self._create)
                    self._schema_ready = True
                for request in steps:
                    with steps.answering():
                        steps.reply = await _send_async(conn, request)
                    if steps.failed and steps.in_transaction:
                        await _rollback_async(conn, steps)
                return steps.result
            except StoreUnavailable:
                if attempt == 2 or not steps.stale:
                    raise
            finally:
                if steps.in_transaction:
                    await _rollback_async(conn, steps)
                await conn.close()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Dispose of the engine made for the running loop; a later call makes a new one.

        An ``AsyncEngine`` passed in stays yours to dispose of.
        """
        engine = self._per_loop.pop(asyncio.get_running_loop(), None)
        if engine is not None:
            await engine.dispose()
