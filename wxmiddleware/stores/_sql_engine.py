"""The URLs of the SQL stores and the engines they name: which dialect and driver a URL
gets, the pool and timeouts that keep a request from waiting long on the database, the
watchdog that ends a libpq round trip past its deadline, and the error for a driver that is
not installed.

Nothing here connects; this module imports SQLAlchemy, so only the SQL store's modules
(:mod:`wxmiddleware.stores.sql` and its private ``_sql_*`` neighbours) import it.
"""

from __future__ import annotations

import inspect
import os
import socket
import threading
from time import monotonic
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Set, TypeVar, Union

from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import ConfigError

_T = TypeVar("_T")

#: The dialects the store speaks (SQLAlchemy's names).
DIALECTS = ("postgresql", "mysql", "mariadb")

#: The drivers the store uses when a URL names none (or names one of the other kind):
#: psycopg 3 and asyncpg for PostgreSQL, PyMySQL and aiomysql for MySQL and MariaDB.
SYNC_DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
ASYNC_DRIVERS = {"postgresql": "asyncpg", "mysql": "aiomysql", "mariadb": "aiomysql"}
_KNOWN_ASYNC = {"asyncpg", "psycopg_async", "aiomysql", "asyncmy"}
_KNOWN_SYNC = {"psycopg", "psycopg2", "pg8000", "pymysql", "mysqldb", "mysqlconnector"}
#: What to install for each driver (the pip package).
PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "asyncpg": "asyncpg",
    "pymysql": "pymysql",
    "aiomysql": "aiomysql",
}

#: Seconds: how long a store waits to connect, for a free pooled connection, and for the
#: answer to each statement (and, on PostgreSQL, a row lock) before it answers 503.
TIMEOUT = 2.0
#: Seconds: how long the schema check at a store's start-up or first use (a dozen catalog
#: queries, and the DDL once) may take as a whole.
SCHEMA_TIMEOUT = 10.0
#: Connections each process keeps open (``pool_size``), and how many more it opens under
#: load (``max_overflow``); see :func:`engine_options`.
POOL_SIZE = 5
MAX_OVERFLOW = 5
#: Seconds after which a pooled connection is replaced (ahead of server and proxy idle
#: timeouts, such as MySQL's ``wait_timeout``).
POOL_RECYCLE = 1800
#: Whether SQLAlchemy has ``create_engine(skip_autocommit_rollback=...)`` (2.0.43+).
SKIPS_AUTOCOMMIT_ROLLBACK = (
    "skip_autocommit_rollback" in inspect.signature(DefaultDialect.__init__).parameters
)


class StoreURL(NamedTuple):
    """A store URL made into what SQLAlchemy needs, and how errors may name it."""

    url: URL
    #: ``postgresql``, ``mysql`` or ``mariadb``.
    dialect: str
    #: The DBAPI driver (``psycopg``, ``asyncpg``, ``pymysql``, ``aiomysql`` …).
    driver: str


def store_url(raw: str, asynchronous: bool) -> StoreURL:
    """Parse ``raw`` (``postgresql://…``, ``postgres://…``, ``mysql://…``, ``mariadb://…``,
    with or without ``+driver``) for a sync or an async store.

    A URL without a driver, or with one of the other kind, gets this store's default
    (:data:`SYNC_DRIVERS` / :data:`ASYNC_DRIVERS`), so one ``WX_SESSION_STORE`` serves a WSGI
    and an ASGI app alike; a driver of the right kind is kept. Raises
    :class:`~wxmiddleware.errors.ConfigError`, naming only the scheme (the rest of a URL may
    hold a password), for a malformed URL or another database.
    """
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise ConfigError(f"the {scheme or 'SQL'} store URL is malformed") from None
    backend = url.get_backend_name()
    dialect = "postgresql" if backend in ("postgresql", "postgres") else backend
    if dialect not in DIALECTS:
        raise ConfigError(
            f"the SQL session store speaks PostgreSQL and MySQL/MariaDB, not {backend!r}"
            " (sqlite:/// URLs name the embedded SQLiteStore)"
        )
    driver = url.get_driver_name() if "+" in url.drivername else ""
    if asynchronous and driver not in _KNOWN_ASYNC:
        driver = ASYNC_DRIVERS[dialect]
    elif not asynchronous and driver not in _KNOWN_SYNC:
        driver = SYNC_DRIVERS[dialect]
    return StoreURL(url.set(drivername=f"{dialect}+{driver}"), dialect, driver)


def engine_options(target: StoreURL, **overrides: Any) -> Dict[str, Any]:
    """The ``create_engine`` / ``create_async_engine`` options of a store built from a URL.

    - A pool of :data:`POOL_SIZE` connections per process plus :data:`MAX_OVERFLOW` under
      load: a lookup holds one for a single statement (well under a millisecond), so five
      serve thousands of requests per second. Plan ``processes x (pool_size + max_overflow)``
      against the server's ``max_connections`` (PostgreSQL's default is 100, MySQL's 151).
    - ``pool_timeout`` :data:`TIMEOUT`: a request that finds every connection busy waits at
      most that long, then answers 503; ``pool_recycle`` :data:`POOL_RECYCLE`; no
      ``pool_pre_ping`` (it would cost a round trip per request: a connection the server
      closed is found by the statement, and the store retries that once).
    - ``isolation_level="AUTOCOMMIT"``: a statement is its own transaction, so a lookup is
      one round trip; operations that need atomicity open one explicitly. With
      ``skip_autocommit_rollback`` (SQLAlchemy 2.0.43+, "Connection Pooling"), a connection
      goes back to the pool without the DBAPI ``rollback()`` that PyMySQL and aiomysql send
      as a ``ROLLBACK`` round trip (one more per operation, and one that aiomysql would
      wait for without end on a server that stopped answering); the runners roll back the
      transactions they open themselves.
    - Driver timeouts (:func:`connect_defaults`), each overridden by the URL's query string.

    ``overrides`` (``pool_size=20``, ``connect_args={...}`` …) win over all of these.
    """
    options: Dict[str, Any] = {
        "pool_size": POOL_SIZE,
        "max_overflow": MAX_OVERFLOW,
        "pool_timeout": TIMEOUT,
        "pool_recycle": POOL_RECYCLE,
        "isolation_level": "AUTOCOMMIT",
        "connect_args": connect_defaults(target.driver, target.url.query),
    }
    if SKIPS_AUTOCOMMIT_ROLLBACK:
        options["skip_autocommit_rollback"] = True
    extra = dict(overrides.pop("connect_args", {}) or {})
    options["connect_args"].update(extra)
    options.update(overrides)
    return options


def connect_defaults(driver: str, query: Mapping[str, Any]) -> Dict[str, Any]:
    """The DBAPI ``connect()`` arguments that bound every wait to about :data:`TIMEOUT`,
    minus those the URL's query string sets itself.

    - psycopg / psycopg2 (libpq): ``connect_timeout`` (whole seconds; libpq's deadline for
      the whole connection start-up, which psycopg 3 also applies to its own wait), and the
      server settings ``statement_timeout`` and ``lock_timeout`` (``options=-c …``). libpq
      has no client-side read timeout, and a server that is frozen (stopped, swapped out)
      still has its kernel acknowledge the query and answer TCP keepalives, so neither
      ``statement_timeout`` nor ``keepalives_*``/``tcp_user_timeout`` end that wait: the
      runner's :class:`Watchdog` does.
    - asyncpg: ``timeout`` (the whole connect) and ``command_timeout`` (client side, per
      statement; it also bounds asyncpg's own cancel request after a timeout), and the same
      server settings.
    - PyMySQL: ``connect_timeout``, ``read_timeout`` (client side, each read of a reply and
      of the server's greeting), ``write_timeout``, and ``innodb_lock_wait_timeout`` for the
      session.
    - aiomysql: ``connect_timeout`` (it bounds the TCP connect only: aiomysql has no read
      timeout, so the async runner's deadline bounds the greeting and every reply) and
      ``innodb_lock_wait_timeout``.

    Sources: libpq "Connection Strings" (``connect_timeout``, ``keepalives``,
    ``tcp_user_timeout``), PostgreSQL "Client Connection Defaults", asyncpg's ``connect()``
    reference, PyMySQL's ``Connection`` reference, aiomysql's ``connect()`` reference,
    MySQL's ``innodb_lock_wait_timeout``; tcp(7) for ``TCP_USER_TIMEOUT``.
    """
    seconds = int(TIMEOUT)
    millis = str(int(TIMEOUT * 1000))
    server = f"-c statement_timeout={millis} -c lock_timeout={millis}"
    lock_wait = f"SET SESSION innodb_lock_wait_timeout={seconds}"
    defaults: Dict[str, Any] = {
        "psycopg": {"connect_timeout": seconds, "options": server},
        "psycopg2": {"connect_timeout": seconds, "options": server},
        "asyncpg": {
            "timeout": TIMEOUT,
            "command_timeout": TIMEOUT,
            "server_settings": {"statement_timeout": millis, "lock_timeout": millis},
        },
        "pymysql": {
            "connect_timeout": seconds,
            "read_timeout": seconds,
            "write_timeout": seconds,
            "init_command": lock_wait,
        },
        "aiomysql": {"connect_timeout": TIMEOUT, "init_command": lock_wait},
    }.get(driver, {})
    return {name: value for name, value in defaults.items() if name not in query}


class Watch:
    """One round trip that :data:`WATCHDOG` ends at ``deadline`` (:func:`time.monotonic`
    seconds) unless it is released first; ``fired`` says it was ended."""

    __slots__ = ("deadline", "fileno", "fired")

    def __init__(self, fileno: Callable[[], int], deadline: float) -> None:
        self.fileno = fileno
        self.deadline = deadline
        self.fired = False


class Watchdog:
    """Ends the synchronous round trips that outlast their deadline, for drivers without a
    client-side read timeout of their own: libpq's (psycopg 3, psycopg2).

    A thread of its own (started at the first :meth:`watch`, again in a forked child) looks
    at the round trips in flight every ``tick`` seconds while there are any, and sleeps
    while there are none. For one past its deadline it shuts the connection's socket down
    (``shutdown(SHUT_RDWR)`` on the descriptor the driver's ``fileno()`` names), so the
    thread blocked in the driver wakes at once with a "server closed the connection" error,
    whatever the server does; the runner then invalidates the connection. It acts under the
    lock :meth:`release` takes, so a descriptor is never shut after its round trip ended.
    """

    def __init__(self, tick: float) -> None:
        self._tick = tick
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # Also in a forked child: the parent's thread is not there, its lock may be held.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._watched: Set[Watch] = set()
        self._thread: Optional[threading.Thread] = None
        self._sleeping = False

    def watch(self, fileno: Callable[[], int], deadline: float) -> Watch:
        """Watch a round trip on the connection whose socket ``fileno()`` names, until
        ``deadline`` (:func:`time.monotonic` seconds)."""
        watch = Watch(fileno, deadline)
        with self._lock:
            self._watched.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="wxmiddleware-sql-watchdog", daemon=True
                )
                self._thread.start()
            elif self._sleeping:
                self._sleeping = False
                self._wake.notify()
        return watch

    def release(self, watch: Watch) -> bool:
        """The round trip ended: stop watching it; returns whether it was ended first."""
        with self._lock:
            self._watched.discard(watch)
            return watch.fired

    def _loop(self) -> None:
        with self._lock:
            while True:
                if not self._watched:
                    self._sleeping = True
                    self._wake.wait()
                    continue
                now = monotonic()
                for watch in [w for w in self._watched if w.deadline <= now]:
                    self._watched.discard(watch)
                    watch.fired = True
                    _shut_down(watch.fileno)
                self._wake.wait(self._tick)


def _shut_down(fileno: Callable[[], int]) -> None:
    try:
        sock = socket.socket(fileno=fileno())
    except Exception:  # the driver already closed it: nothing is waiting on it
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # no longer connected: the waiting call has its error already
    finally:
        sock.detach()  # the descriptor stays the driver's to close


#: The process's watchdog; it looks every tenth of :data:`TIMEOUT`, so a round trip ends
#: at most that long after its deadline.
WATCHDOG = Watchdog(TIMEOUT / 10)


def missing_driver(target: StoreURL, exc: BaseException) -> ConfigError:
    """The :class:`~wxmiddleware.errors.ConfigError` for a URL whose driver (or SQLAlchemy's
    plugin for it) cannot be loaded: it names the package to install."""
    package = PACKAGES.get(target.driver, target.driver)
    return ConfigError(
        f"the {target.dialect} session store needs the {target.driver} driver, which is not"
        f' installed: pip install "wxmiddleware[sql]" (or pip install "{package}")'
        f" ({type(exc).__name__})"
    )


def dialect_of(engine: Union[Engine, AsyncEngine]) -> str:
    """The dialect of an engine passed in, or a ConfigError for a database the store does
    not speak."""
    name = engine.dialect.name
    if name not in DIALECTS:
        raise ConfigError(
            f"the SQL session store speaks PostgreSQL and MySQL/MariaDB, not {name!r}"
        )
    return name


def shown(url: URL) -> str:
    """``url`` as a log or a ``repr`` may show it: without its password."""
    return url.render_as_string(hide_password=True)


def build_engine(target: StoreURL, create: Callable[..., _T], options: Any) -> _T:
    """``create(url, **options)``, with a driver that cannot load as a ConfigError."""
    try:
        return create(target.url, **engine_options(target, **options))
    except (ImportError, NoSuchModuleError) as exc:
        raise missing_driver(target, exc) from None
    except (TypeError, ArgumentError) as exc:
        raise ConfigError(
            f"the {target.dialect} store's engine options were refused ({type(exc).__name__})"
        ) from None
