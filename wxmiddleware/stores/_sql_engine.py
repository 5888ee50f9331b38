"""The URLs of the SQL stores and the engines they name: which dialect and driver a URL
gets, the pool and timeouts that keep a request from waiting long on the database, and the
error for a driver that is not installed.

Nothing here connects; this module imports SQLAlchemy, so only the SQL store's modules
(:mod:`wxmiddleware.stores.sql` and its private ``_sql_*`` neighbours) import it.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, NamedTuple, TypeVar, Union

from sqlalchemy.engine import URL, Engine, make_url
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

#: Seconds: how long a store waits to connect, for a free pooled connection, and for a
#: statement (and, on PostgreSQL, a row lock) before it answers 503.
TIMEOUT = 2.0
#: Connections each process keeps open (``pool_size``), and how many more it opens under
#: load (``max_overflow``); see :func:`engine_options`.
POOL_SIZE = 5
MAX_OVERFLOW = 5
#: Seconds after which a pooled connection is replaced (ahead of server and proxy idle
#: timeouts, such as MySQL's ``wait_timeout``).
POOL_RECYCLE = 1800


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
      one round trip; operations that need atomicity open one explicitly.
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
    extra = dict(overrides.pop("connect_args", {}) or {})
    options["connect_args"].update(extra)
    options.update(overrides)
    return options


def connect_defaults(driver: str, query: Mapping[str, Any]) -> Dict[str, Any]:
    """The DBAPI ``connect()`` arguments that bound every wait to about :data:`TIMEOUT`,
    minus those the URL's query string sets itself.

    - psycopg / psycopg2 (libpq): ``connect_timeout`` (whole seconds), and the server
      settings ``statement_timeout`` and ``lock_timeout`` (``options=-c …``). libpq has no
      client-side read timeout: a server that accepts connections but stops answering is
      bounded by ``statement_timeout`` and the kernel's TCP timeouts (libpq's
      ``keepalives_*`` and ``tcp_user_timeout`` URL options tune them).
    - asyncpg: ``timeout`` (connect) and ``command_timeout`` (client side, per statement),
      and the same server settings.
    - PyMySQL: ``connect_timeout``, ``read_timeout``, ``write_timeout`` (client side) and
      ``innodb_lock_wait_timeout`` for the session.
    - aiomysql: ``connect_timeout`` and ``innodb_lock_wait_timeout``.

    Sources: the libpq "Connection Strings" and PostgreSQL "Client Connection Defaults"
    pages, asyncpg's ``connect()`` reference, PyMySQL's ``Connection`` reference, MySQL's
    ``innodb_lock_wait_timeout``.
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
