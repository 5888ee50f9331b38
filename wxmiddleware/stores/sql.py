"""SQLStore and AsyncSQLStore: sessions in the PostgreSQL or MySQL/MariaDB database the app
already runs, shared by every process and machine that reaches it.

Install with ``pip install "wxmiddleware[sql]"`` (SQLAlchemy 2 Core, psycopg 3 and asyncpg
for PostgreSQL, PyMySQL and aiomysql for MySQL/MariaDB); this module and its two private
neighbours are the only ones that import SQLAlchemy. Configure it by URL, as the other
stores::

    WX_SESSION_STORE=postgresql://app:pw@db.internal:5432/app   # psycopg / asyncpg
    WX_SESSION_STORE=mysql://app:pw@db.internal:3306/app        # PyMySQL / aiomysql

A URL without a driver (or with one of the other kind: ``postgresql+psycopg://`` in an ASGI
app) gets the store's own, so one ``WX_SESSION_STORE`` serves WSGI and ASGI apps alike; or
pass an ``Engine`` / ``AsyncEngine`` the app already has (``SQLStore(engine)``). Django: the
database's settings make the URL (see the README's Stores section).

The tables (``wx_sessions``, ``wx_codes``, ``wx_values``, ``wx_locks``; the prefix is
``table_prefix``) are described in :mod:`wxmiddleware.stores._sql_schema`; they are created
on first use, or by ``wxmiddleware store init --store URL`` (``--print`` shows the DDL for a
DBA to apply). An existing table without the store's columns is a
:class:`~wxmiddleware.errors.ConfigError` at start-up, naming the table and the fix.

What each request costs: an authenticated request is one ``SELECT`` by primary key (the
sha256 of its token), in autocommit mode, so one round trip; an ``UPDATE`` of the idle
deadline follows only when it moves by more than the slide granularity
(:func:`wxmiddleware.session.deadline_after_use`), at most once a minute per session. The
session_key is sealed (AES-GCM, :class:`~wxmiddleware.session.SessionScope`), the token kept
only as its digest, the login code only as its digest plus the token sealed under it.

Races between machines are decided by the database: a login code's record is claimed by an
``INSERT`` on its primary key (one machine wins; the others find it pending), an expired one
by a conditional ``UPDATE``. The shared access token's lock is a lease row taken under
``SELECT … FOR UPDATE SKIP LOCKED`` in a transaction of one or two statements: an acquirer
never waits for another (it is told the lock is held), and no row lock outlives the
acquisition. Expired rows are deleted in batches through an index on their expiry (a
``SELECT`` of up to 1000 keys, then a ``DELETE`` by primary key, each its own short
transaction): by ``wxmiddleware sessions purge`` (or :meth:`SQLStore.purge_expired`) from
cron, and 100 at a time by a login at most once a minute per process.

A database that is down or slow answers 503 (:class:`~wxmiddleware.errors.StoreUnavailable`)
within about :data:`~wxmiddleware.stores._sql_schema.TIMEOUT` seconds (connect, pool and
statement timeouts: :func:`~wxmiddleware.stores._sql_schema.engine_options`), never a hang;
its ``detail``, for the log, names the dialect, the operation and the error's class and code,
never a statement's parameters or the URL's password. A connection the server dropped (it
restarted) fails the statement that finds it, the pool is emptied, and the operation runs
once more on a new connection: the store recovers by itself when the database returns.

Sources: SQLAlchemy 2.0 "Working with Engines and Connections" (isolation level
``AUTOCOMMIT``), "Connection Pooling" (``pool_size``, ``max_overflow``, ``pool_timeout``,
disconnect handling), "Asynchronous I/O (asyncio)" (one engine per event loop);
PostgreSQL "SELECT: The Locking Clause" (``SKIP LOCKED``); MySQL 8.0 / MariaDB 10.6
"SELECT … FOR UPDATE SKIP LOCKED".
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Literal, Optional, TypeVar, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..errors import ConfigError, StoreUnavailable
from ._sql_ops import Marker, Operation, SQLOperations, SQLStoreMethods, Steps, cause
from ._sql_schema import (
    DEFAULT_TABLE_PREFIX,
    DIALECTS,
    StoreURL,
    Tables,
    ddl,
    engine_options,
    mismatch_error,
    missing_driver,
    prepare_schema,
    store_url,
)

__all__ = ["AsyncSQLStore", "SQLStore"]

_T = TypeVar("_T")
logger = logging.getLogger("wxmiddleware")
#: What opening a connection raises when the database is not there: SQLAlchemy's errors,
#: and what asyncpg raises unwrapped (refused, unknown host, timed out).
CONNECT_ERRORS = (SQLAlchemyError, OSError, asyncio.TimeoutError)


def _dialect_of(engine: Union[Engine, AsyncEngine]) -> str:
    name = engine.dialect.name
    if name not in DIALECTS:
        raise ConfigError(
            f"the SQL session store speaks PostgreSQL and MySQL/MariaDB, not {name!r}"
        )
    return name


def _shown(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def _build(target: StoreURL, create: Callable[..., _T], options: Any) -> _T:
    """``create(url, **options)``, with a driver that cannot load as a ConfigError."""
    try:
        return create(target.url, **engine_options(target, **options))
    except (ImportError, NoSuchModuleError) as exc:
        raise missing_driver(target, exc) from None
    except (TypeError, sa.exc.ArgumentError) as exc:
        raise ConfigError(
            f"the {target.dialect} store's engine options were refused ({type(exc).__name__})"
        ) from None


def _prepare(conn: Connection, tables: Tables, create: bool) -> None:
    """Check (and with ``create``, make) the schema over ``conn``: a mismatch is a
    ConfigError; a race with another process creating it is tried once more."""
    try:
        problem = prepare_schema(conn, tables, create)
    except sa.exc.DBAPIError:
        # Another process created a table or index between the inspection and ours.
        problem = prepare_schema(conn, tables, create)
    if problem is not None:
        raise mismatch_error(problem, tables.prefix)


@contextmanager
def _preparing(steps: Steps[Any]) -> Iterator[None]:
    """The schema check of a first use: its failures are the operation's 503."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise steps.failure(exc) from None
    except ConfigError as exc:
        raise StoreUnavailable(detail=f"SQL: {exc}") from None


# --- the synchronous store ---


def _send(conn: Connection, request: Any) -> Any:
    """One statement: its rows (tuples) when it returns rows, else its row count."""
    if isinstance(request, Marker):
        conn.exec_driver_sql(request.sql)
        return None
    result = conn.execute(request.statement, request.params)
    return [tuple(row) for row in result] if result.returns_rows else result.rowcount


def _rollback(conn: Connection, steps: Steps[Any]) -> None:
    steps.in_transaction = False
    try:
        conn.exec_driver_sql("ROLLBACK")
    except SQLAlchemyError:
        conn.invalidate()  # never hand a connection in an open transaction back to the pool


def _dispose_in_child(reference: weakref.ReferenceType[Engine]) -> None:
    engine = reference()
    if engine is not None:
        # The parent's connections stay the parent's: the child opens its own.
        engine.dispose(close=False)


class SQLStore(SQLStoreMethods):
    """A :class:`~wxmiddleware.stores.base.SessionStore` in PostgreSQL or MySQL/MariaDB.

    ``engine`` is a SQLAlchemy ``Engine`` for PostgreSQL or MySQL/MariaDB (any driver): the
    store uses it in autocommit mode (``engine.execution_options(isolation_level=
    "AUTOCOMMIT")``, which shares its pool), and its pool and timeouts are yours (or use
    :meth:`from_url`, which picks request-path ones). ``table_prefix`` starts every table
    and index name. With ``create_schema`` (the default), missing tables are created on
    first use; without it, they must exist (``wxmiddleware store init``). A store may be
    created at import time: it connects on first use, and a process forked after that opens
    connections of its own.

    .. code-block:: python

        store = SQLStore.from_url("postgresql://app@db/app")
        store.check()      # now rather than at the first request (open_store does it)
        app.wsgi_app = WxMiddleware(app.wsgi_app, config=config, store=store)

    Raises :class:`~wxmiddleware.errors.ConfigError` for another database or a bad prefix;
    every database error later is :class:`~wxmiddleware.errors.StoreUnavailable`. See the
    module docstring for what each operation sends.
    """

    #: Which runner this store is (:mod:`wxmiddleware.stores._operations`).
    asynchronous: Literal[False] = False

    def __init__(
        self,
        engine: Engine,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        create_schema: bool = True,
    ) -> None:
        if not isinstance(engine, Engine):
            raise ConfigError("SQLStore takes a SQLAlchemy Engine (AsyncSQLStore an AsyncEngine)")
        self._dialect = _dialect_of(engine)
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._operations = SQLOperations(Tables(table_prefix, self._dialect))
        self._create = create_schema
        self._schema_ready = False
        self._owns_engine = False
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(
                after_in_child=functools.partial(_dispose_in_child, weakref.ref(engine))
            )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        create_schema: bool = True,
        **options: Any,
    ) -> SQLStore:
        """A store over a new engine for a ``postgresql://``, ``postgres://``, ``mysql://``
        or ``mariadb://`` URL (an explicit ``+driver`` of the sync kind is kept).

        ``options`` go to ``sqlalchemy.create_engine`` and override
        :func:`~wxmiddleware.stores._sql_schema.engine_options` (pool size, timeouts); the
        URL's query string sets driver options (``?connect_timeout=5``). The store owns the
        engine, so :meth:`close` disposes of it. Raises
        :class:`~wxmiddleware.errors.ConfigError` for a malformed URL (naming only its
        scheme) and for a driver that is not installed (naming what to install).
        """
        target = store_url(url, asynchronous=False)
        store = cls(
            _build(target, sa.create_engine, options),
            table_prefix=table_prefix,
            create_schema=create_schema,
        )
        store._owns_engine = True
        return store

    def __repr__(self) -> str:
        return f"SQLStore({_shown(self._engine.url)!r}, table_prefix={self.table_prefix!r})"

    @property
    def engine(self) -> Engine:
        """The engine the store talks through (in autocommit mode)."""
        return self._engine

    @property
    def table_prefix(self) -> str:
        """The prefix of the store's table and index names."""
        return self._operations.t.prefix

    def ddl(self) -> List[str]:
        """The ``CREATE TABLE`` / ``CREATE INDEX`` statements of the store's schema, in its
        database's dialect (nothing connects)."""
        return ddl(self._operations.t, self._engine.dialect)

    def check(self, create: Optional[bool] = None) -> None:
        """Connect now, create the missing tables (unless ``create`` is false; by default as
        ``create_schema`` says) and check the existing ones.

        Raises :class:`~wxmiddleware.errors.ConfigError` when a table does not match (naming
        it and the fix), :class:`~wxmiddleware.errors.StoreUnavailable` when the database
        does not answer.
        """
        tables = self._operations.t
        make = self._create if create is None else create
        try:
            with self._engine.connect() as conn:
                _prepare(conn, tables, make)
        except CONNECT_ERRORS as exc:
            raise StoreUnavailable(detail=f"SQL ({self._dialect}): check: {cause(exc)}") from None
        self._schema_ready = True

    def _run(self, start: Callable[..., Operation[_T]], *args: Any, **kwargs: Any) -> _T:
        for attempt in (1, 2):
            steps = Steps(start(self._operations, *args, **kwargs), start.__name__, self._dialect)
            try:
                conn = self._engine.connect()
            except CONNECT_ERRORS as exc:
                raise steps.failure(exc) from None
            try:
                if not self._schema_ready:
                    with _preparing(steps):
                        _prepare(conn, self._operations.t, self._create)
                    self._schema_ready = True
                for request in steps:
                    with steps.answering():
                        steps.reply = _send(conn, request)
                    if steps.failed and steps.in_transaction:
                        _rollback(conn, steps)
                return steps.result
            except StoreUnavailable:
                if attempt == 2 or not steps.stale:
                    raise
            finally:
                if steps.in_transaction:
                    _rollback(conn, steps)
                conn.close()
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Dispose of the engine if :meth:`from_url` made it; an engine passed in stays
        yours."""
        if self._owns_engine:
            self._engine.dispose()


# --- the asynchronous store ---


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
    """The asynchronous twin of :class:`SQLStore`, over SQLAlchemy's asyncio extension.

    An asyncio driver's connections belong to the event loop that opened them. ``engine``
    is either an ``AsyncEngine`` (used as it is: keep it to one loop), or a callable with no
    arguments that builds one, which the store calls lazily, inside the running loop, once
    per event loop (so the store may be created at import time and used from several
    loops); with a callable, ``dialect`` (``postgresql``, ``mysql`` or ``mariadb``) must be
    given. :meth:`from_url` does the latter. The tables, statements and guarantees are
    :class:`SQLStore`'s: a WSGI app and an ASGI app on one database read each other's
    sessions.
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
            dialect = _dialect_of(engine)
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
        self._shown = _shown(engine.url) if isinstance(engine, AsyncEngine) else dialect

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
        naming what to install. ``options`` are as for :meth:`SQLStore.from_url`.
        """
        target = store_url(url, asynchronous=True)
        # Built once now, so that a missing driver fails at start-up; then once per loop.
        _build(target, create_async_engine, options).sync_engine.dispose()
        factory = functools.partial(_build, target, create_async_engine, options)
        store = cls(
            factory, table_prefix=table_prefix, create_schema=create_schema, dialect=target.dialect
        )
        store._shown = _shown(target.url)
        return store

    def __repr__(self) -> str:
        return f"AsyncSQLStore({self._shown!r}, table_prefix={self.table_prefix!r})"

    @property
    def table_prefix(self) -> str:
        """The prefix of the store's table and index names."""
        return self._operations.t.prefix

    def check(self, create: Optional[bool] = None) -> None:
        """:meth:`SQLStore.check` for a store :meth:`from_url` made, over an engine of its
        own in a thread of its own (callable before any event loop runs). A store over an
        ``AsyncEngine`` passed in checks its schema on first use instead."""
        if isinstance(self._source, AsyncEngine):
            return
        factory = self._source
        make = self._create if create is None else create
        failure: List[BaseException] = []

        async def run() -> None:
            engine = factory()
            try:
                async with engine.connect() as conn:
                    await conn.run_sync(_prepare, self._operations.t, make)
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
                    with _preparing(steps):
                        await conn.run_sync(_prepare, self._operations.t, self._create)
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


def open_url(url: str, asynchronous: bool = False) -> Union[SQLStore, AsyncSQLStore]:
    """The store :func:`~wxmiddleware.stores.open_store` (or, with ``asynchronous``,
    :func:`~wxmiddleware.stores.aio.open_async_store`) opens for a SQL URL, its schema
    checked (and created) now.

    A schema that does not match, or a driver that is not installed, is a
    :class:`~wxmiddleware.errors.ConfigError`; a database that does not answer yet is only
    a warning (the app starts, answers 503 meanwhile, and checks the schema at first use).
    """
    store: Union[SQLStore, AsyncSQLStore] = (
        AsyncSQLStore.from_url(url) if asynchronous else SQLStore.from_url(url)
    )
    try:
        store.check()
    except StoreUnavailable as exc:
        logger.warning(
            "the SQL session store did not answer at start-up (%s); requests answer 503"
            " until it does",
            exc.detail,
        )
    return store
