"""SQLStore and AsyncSQLStore: sessions in the PostgreSQL or MySQL/MariaDB database the app
already runs, shared by every process and machine that reaches it.

Install with ``pip install "wxmiddleware[sql]"`` (SQLAlchemy 2 Core, psycopg 3 and asyncpg
for PostgreSQL, PyMySQL and aiomysql for MySQL/MariaDB); this module and its private
``_sql_*`` neighbours (the asynchronous store, the operations and the steps that carry them,
the schema, the URLs and engines) are the only ones that import SQLAlchemy. Configure it by
URL, as the other stores::

    WX_SESSION_STORE=postgresql://app:pw@db.internal:5432/app   # psycopg / asyncpg
    WX_SESSION_STORE=mysql://app:pw@db.internal:3306/app        # PyMySQL / aiomysql

A URL without a driver (or with one of the other kind: ``postgresql+psycopg://`` in an ASGI
app) gets the store's own, so one ``WX_SESSION_STORE`` serves WSGI and ASGI apps alike; or
pass an ``Engine`` / ``AsyncEngine`` the app already has (``SQLStore(engine)``). Django: the
database's settings make the URL (see docs/sql.md, "Many machines: PostgreSQL and MySQL").

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

A database that is down, slow or frozen answers 503
(:class:`~wxmiddleware.errors.StoreUnavailable`) within about
:data:`~wxmiddleware.stores._sql_engine.TIMEOUT` seconds per wait, never a hang: the
connect, pool and driver timeouts (:func:`~wxmiddleware.stores._sql_engine.engine_options`),
and a client-side deadline on each statement's answer, which the runners enforce where the
driver has no read timeout (:class:`~wxmiddleware.stores._sql_engine.Watchdog` for libpq;
the asynchronous runner drops the connection). A connection whose statement missed its
deadline is invalidated, never handed back to the pool, and the operation ends there. The
503's ``detail``, for the log, names the dialect, the operation and the error's class and
code, never a statement's parameters or the URL's password. A connection the server dropped (it
restarted) fails the statement that finds it, the pool is emptied, and the operation runs
once more on a new connection: the store recovers by itself when the database returns.

Sources: SQLAlchemy 2.0 "Working with Engines and Connections" (isolation level
``AUTOCOMMIT``), "Connection Pooling" (``pool_size``, ``max_overflow``, ``pool_timeout``,
disconnect handling), "Asynchronous I/O (asyncio)" (one engine per event loop);
PostgreSQL "SELECT: The Locking Clause" (``SKIP LOCKED``); MySQL 8.0 / MariaDB 10.6
"SELECT … FOR UPDATE SKIP LOCKED".
"""

from __future__ import annotations

import functools
import logging
import os
import weakref
from time import monotonic
from typing import Any, Callable, List, Literal, Optional, TypeVar, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ..errors import ConfigError, StoreUnavailable
from ._sql_async import AsyncSQLStore
from ._sql_engine import (
    SCHEMA_TIMEOUT,
    TIMEOUT,
    WATCHDOG,
    build_engine,
    dialect_of,
    shown,
    store_url,
)
from ._sql_ops import SQLOperations, SQLStoreMethods
from ._sql_schema import DEFAULT_TABLE_PREFIX, Tables, ddl, ensure_schema
from ._sql_steps import CONNECT_ERRORS, Marker, Operation, Steps, cause

__all__ = ["AsyncSQLStore", "SQLStore"]

_T = TypeVar("_T")
logger = logging.getLogger("wxmiddleware")


def _send(conn: Connection, request: Any) -> Any:
    """One statement: its rows (tuples) when it returns rows, else its row count."""
    if isinstance(request, Marker):
        conn.exec_driver_sql(request.sql)
        return None
    result = conn.execute(request.statement, request.params)
    return [tuple(row) for row in result] if result.returns_rows else result.rowcount


class _Bound:
    """Runs each round trip on one connection within a client-side deadline.

    Past its deadline a round trip is ended: by the driver's own read timeout (PyMySQL's
    ``read_timeout``) or, on libpq (psycopg, psycopg2, which have none), by the
    :data:`~wxmiddleware.stores._sql_engine.WATCHDOG`. Either way the connection is
    invalidated (closed, never handed back to the pool half-used) and
    ``failure(TimeoutError())`` raised, a :class:`~wxmiddleware.errors.StoreUnavailable`
    that ends the operation (no statement after it, no second attempt).
    """

    __slots__ = ("_conn", "_failure")

    def __init__(
        self, conn: Connection, failure: Callable[[BaseException], StoreUnavailable]
    ) -> None:
        self._conn = conn
        self._failure = failure

    def __call__(self, seconds: float, call: Callable[..., _T], *args: Any) -> _T:
        deadline = monotonic() + seconds
        fileno = getattr(self._conn.connection.dbapi_connection, "fileno", None)
        watch = None if fileno is None else WATCHDOG.watch(fileno, deadline)
        try:
            answer = call(*args)
        except Exception:
            shut = watch is not None and WATCHDOG.release(watch)
            if not shut and monotonic() < deadline:
                raise  # the statement's own error
            self._conn.invalidate()
            raise self._failure(TimeoutError()) from None
        if watch is not None and WATCHDOG.release(watch):
            self._conn.invalidate()  # it answered as the watchdog shut its socket down
        return answer


def _rollback(conn: Connection, steps: Steps[Any], bound: _Bound) -> None:
    steps.in_transaction = False
    if conn.invalidated:
        return  # closed: the server rolls the transaction back (reconnecting would wait)
    try:
        bound(TIMEOUT, conn.exec_driver_sql, "ROLLBACK")
    except (SQLAlchemyError, StoreUnavailable):
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
        self._dialect = dialect_of(engine)
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
        :func:`~wxmiddleware.stores._sql_engine.engine_options` (pool size, timeouts); the
        URL's query string sets driver options (``?connect_timeout=5``). The store owns the
        engine, so :meth:`close` disposes of it. Raises
        :class:`~wxmiddleware.errors.ConfigError` for a malformed URL (naming only its
        scheme) and for a driver that is not installed (naming what to install).
        """
        target = store_url(url, asynchronous=False)
        store = cls(
            build_engine(target, sa.create_engine, options),
            table_prefix=table_prefix,
            create_schema=create_schema,
        )
        store._owns_engine = True
        return store

    def __repr__(self) -> str:
        return f"SQLStore({shown(self._engine.url)!r}, table_prefix={self.table_prefix!r})"

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

        def failure(exc: BaseException) -> StoreUnavailable:
            return StoreUnavailable(detail=f"SQL ({self._dialect}): check: {cause(exc)}")

        try:
            with self._engine.connect() as conn:
                _Bound(conn, failure)(SCHEMA_TIMEOUT, ensure_schema, conn, tables, make)
        except CONNECT_ERRORS as exc:
            raise failure(exc) from None
        self._schema_ready = True

    def _run(self, start: Callable[..., Operation[_T]], *args: Any, **kwargs: Any) -> _T:
        for attempt in (1, 2):
            steps = Steps(start(self._operations, *args, **kwargs), start.__name__, self._dialect)
            try:
                conn = self._engine.connect()
            except CONNECT_ERRORS as exc:
                raise steps.failure(exc) from None
            bound = _Bound(conn, steps.failure)
            try:
                if not self._schema_ready:
                    with steps.preparing():
                        bound(SCHEMA_TIMEOUT, ensure_schema, conn, self._operations.t, self._create)
                    self._schema_ready = True
                for request in steps:
                    with steps.answering():
                        steps.reply = bound(TIMEOUT, _send, conn, request)
                    if steps.failed and steps.in_transaction:
                        _rollback(conn, steps, bound)
                return steps.result
            except StoreUnavailable:
                if attempt == 2 or not steps.stale:
                    raise
            finally:
                if steps.in_transaction:
                    _rollback(conn, steps, bound)
                conn.close()
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Dispose of the engine if :meth:`from_url` made it; an engine passed in stays
        yours."""
        if self._owns_engine:
            self._engine.dispose()


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
