"""AsyncSQLStore: the asynchronous twin of :class:`~wxmiddleware.stores.sql.SQLStore`.

Its operations, tables and guarantees are the synchronous store's
(:mod:`wxmiddleware.stores._sql_ops`); what differs is the runner, which awaits each
statement on an ``AsyncConnection``, and the engines: an asyncio driver's connections belong
to the event loop that opened them, so a store built from a URL makes one engine per loop;
and its deadlines, which are the runner's own (:class:`_Bound`), since aiomysql has no read
timeout. Import it from :mod:`wxmiddleware.stores.sql`, whose docstring says what each
request costs.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import weakref
from typing import Any, Awaitable, Callable, List, Literal, Optional, TypeVar, Union

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..errors import ConfigError, StoreUnavailable
from ._sql_engine import (
    DIALECTS,
    SCHEMA_TIMEOUT,
    TIMEOUT,
    build_engine,
    dialect_of,
    shown,
    store_url,
)
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


async def _within(seconds: float, awaitable: Awaitable[_T]) -> _T:
    """``await awaitable``, cancelled after ``seconds`` with :class:`asyncio.TimeoutError`
    (``asyncio.timeout``, or ``asyncio.wait_for`` before Python 3.11)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


#: The asyncio drivers' own way to drop a connection at once, with no round trip: asyncpg's
#: ``Connection.terminate()``, aiomysql's (synchronous) ``Connection.close()``.
_DROP = {"asyncpg": "terminate", "aiomysql": "close"}


def _dropper(conn: AsyncConnection) -> Optional[Callable[[], object]]:
    """What drops ``conn``'s driver connection at once, or None for another driver (or a
    connection SQLAlchemy already invalidated)."""
    sync = conn.sync_connection
    if sync is None or sync.invalidated:
        return None
    name = _DROP.get(sync.dialect.driver)
    return None if name is None else getattr(sync.connection.driver_connection, name)


class _Bound:
    """Runs each round trip on one connection within a client-side deadline.

    At its deadline the driver's connection is dropped (:data:`_DROP`), so the waiting call
    fails at once with "connection lost"; with another driver the round trip is cancelled
    instead (:func:`_within`; SQLAlchemy invalidates a connection whose operation was
    cancelled, its "asyncio" page). Not cancelling asyncpg matters: SQLAlchemy's
    invalidation first tries asyncpg's graceful ``close(timeout=2)``, two more seconds on a
    server that does not answer. Then the connection is invalidated (never handed back to
    the pool half-used) and ``failure(TimeoutError())`` raised, a
    :class:`~wxmiddleware.errors.StoreUnavailable` that ends the operation (no statement
    after it, no second attempt). asyncpg's ``command_timeout`` ends a statement about as
    early, with the same outcome.
    """

    __slots__ = ("_conn", "_failure")

    def __init__(
        self, conn: AsyncConnection, failure: Callable[[BaseException], StoreUnavailable]
    ) -> None:
        self._conn = conn
        self._failure = failure

    async def __call__(self, seconds: float, awaitable: Awaitable[_T]) -> _T:
        # The loop's clock, which its timers follow (uvloop's lags the system's a little).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        drop = _dropper(self._conn)
        try:
            if drop is None:
                return await _within(seconds, awaitable)
            timer = loop.call_at(deadline, drop)
            try:
                answer = await awaitable
            finally:
                timer.cancel()
        except Exception:
            if loop.time() < deadline:
                raise  # the statement's own error
            await self._conn.invalidate()
            raise self._failure(TimeoutError()) from None
        if loop.time() >= deadline:
            await self._conn.invalidate()  # it answered as the deadline dropped the connection
        return answer


async def _rollback_async(conn: AsyncConnection, steps: Steps[Any], bound: _Bound) -> None:
    steps.in_transaction = False
    if conn.invalidated:
        return  # closed: the server rolls the transaction back (reconnecting would wait)
    try:
        await bound(TIMEOUT, conn.exec_driver_sql("ROLLBACK"))
    except (SQLAlchemyError, StoreUnavailable):
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
        failed: List[BaseException] = []

        def failure(exc: BaseException) -> StoreUnavailable:
            return StoreUnavailable(detail=f"SQL ({self._dialect}): check: {cause(exc)}")

        async def run() -> None:
            engine = factory()
            try:
                conn = await _within(TIMEOUT, engine.connect())
                try:
                    schema = conn.run_sync(ensure_schema, self._operations.t, make)
                    await _Bound(conn, failure)(SCHEMA_TIMEOUT, schema)
                finally:
                    await conn.close()
            finally:
                await engine.dispose()

        def thread() -> None:
            try:
                asyncio.run(run())
            except BaseException as exc:  # handed to the calling thread
                failed.append(exc)

        worker = threading.Thread(target=thread, name="wxmiddleware-sql-check")
        worker.start()
        worker.join()
        if failed:
            if isinstance(failed[0], CONNECT_ERRORS):
                raise failure(failed[0]) from None
            raise failed[0]
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
                conn = await _within(TIMEOUT, engine.connect())
            except CONNECT_ERRORS as exc:
                raise steps.failure(exc) from None
            bound = _Bound(conn, steps.failure)
            try:
                if not self._schema_ready:
                    with steps.preparing():
                        schema = conn.run_sync(ensure_schema, self._operations.t, self._create)
                        await bound(SCHEMA_TIMEOUT, schema)
                    self._schema_ready = True
                for request in steps:
                    with steps.answering():
                        steps.reply = await bound(TIMEOUT, _send_async(conn, request))
                    if steps.failed and steps.in_transaction:
                        await _rollback_async(conn, steps, bound)
                return steps.result
            except StoreUnavailable:
                if attempt == 2 or not steps.stale:
                    raise
            finally:
                if steps.in_transaction:
                    await _rollback_async(conn, steps, bound)
                await conn.close()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Dispose of the engine made for the running loop; a later call makes a new one.

        An ``AsyncEngine`` passed in stays yours to dispose of.
        """
        engine = self._per_loop.pop(asyncio.get_running_loop(), None)
        if engine is not None:
            await engine.dispose()
