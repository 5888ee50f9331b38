"""The tables of :class:`~wxmiddleware.stores.sql.SQLStore`, the statements that read and
write them, and the check that an existing schema matches (the engines a URL names are in
:mod:`wxmiddleware.stores._sql_engine`).

Four tables, every name starting with a prefix (``wx_`` unless configured), in the
database (MySQL) or the first schema of the ``search_path`` (PostgreSQL) the URL names::

    wx_sessions  key (sha256 of the token, hex) PK, appid, openid, unionid,
                 sealed_key (the session_key sealed by the app's SessionScope), key_at (when
                 WeChat issued it), created_at, expires_at, idle_until; indexed by openid and
                 by idle_until (the expiry: idle_until never passes expires_at)
    wx_codes     key (code_key) PK, sealed ('' while a login owns the code, then the token
                 sealed under the code), expires_at (indexed)
    wx_values    name PK, value, expires_at (indexed): shared values such as the access token
    wx_locks     name PK, owner, expires_at: named locks, leases taken under a row lock

Times are epoch seconds (``DOUBLE PRECISION`` / ``DOUBLE``) from the app servers' clocks,
as in the SQLite store: keep them in sync (NTP). MySQL tables are InnoDB in ``utf8mb4``
with the binary collation ``utf8mb4_bin``, so openids (which differ in case only) never
match each other. :func:`ddl` prints the ``CREATE`` statements for a DBA to apply.

Nothing here connects but :func:`ensure_schema` and :func:`prepare_schema`, over a
connection they are given; this module imports SQLAlchemy, so only the SQL store's modules
(:mod:`wxmiddleware.stores.sql` and its private ``_sql_*`` neighbours) import it.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.engine.interfaces import ReflectedColumn
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex, CreateTable

from ..errors import ConfigError

#: The prefix of every table and index name unless configured.
DEFAULT_TABLE_PREFIX = "wx_"
_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,29}$")


def _columns(prefix: str, metadata: sa.MetaData) -> Tuple[sa.Table, sa.Table, sa.Table, sa.Table]:
    options: Dict[str, Any] = {
        "mysql_engine": "InnoDB",
        "mysql_charset": "utf8mb4",
        "mysql_collate": "utf8mb4_bin",
    }
    sessions = sa.Table(
        f"{prefix}sessions",
        metadata,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("appid", sa.String(64), nullable=False),
        sa.Column("openid", sa.String(128), nullable=False),
        sa.Column("unionid", sa.String(128), nullable=True),
        sa.Column("sealed_key", sa.String(255), nullable=False),
        sa.Column("key_at", sa.Double(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("idle_until", sa.Double(), nullable=False),
        sa.Index(f"{prefix}sessions_openid", "openid"),
        sa.Index(f"{prefix}sessions_idle_until", "idle_until"),
        **options,
    )
    codes = sa.Table(
        f"{prefix}codes",
        metadata,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("sealed", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Index(f"{prefix}codes_expires_at", "expires_at"),
        **options,
    )
    values = sa.Table(
        f"{prefix}values",
        metadata,
        sa.Column("name", sa.String(191), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Index(f"{prefix}values_expires_at", "expires_at"),
        **options,
    )
    locks = sa.Table(
        f"{prefix}locks",
        metadata,
        sa.Column("name", sa.String(191), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        **options,
    )
    return sessions, codes, values, locks


def _param(name: str) -> Any:
    # Never a column's name: SQLAlchemy reserves those for an UPDATE's SET values.
    return sa.bindparam(name)


class Tables:
    """The store's tables under ``prefix`` and the statements of its operations, built once.

    ``dialect`` (``postgresql``, ``mysql`` or ``mariadb``) picks the one statement that
    differs: the upsert of a shared value. Raises :class:`~wxmiddleware.errors.ConfigError`
    for a prefix that is not a short SQL identifier (letters, digits, ``_``; at most 30).
    """

    def __init__(self, prefix: str, dialect: str) -> None:
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise ConfigError(
                "table_prefix must be letters, digits and _ (at most 30), starting with a letter"
                " or _"
            )
        self.prefix = prefix
        self.metadata = sa.MetaData()
        s, c, v, lk = _columns(prefix, self.metadata)
        self.sessions, self.codes, self.values, self.locks = s, c, v, lk
        live = sa.and_(s.c.idle_until > _param("now"), s.c.expires_at > _param("now"))
        user = sa.and_(s.c.openid == _param("user_openid"), s.c.appid == _param("user_appid"))

        #: The one indexed read of an authenticated request (primary key).
        self.get_session = sa.select(
            s.c.appid,
            s.c.openid,
            s.c.unionid,
            s.c.sealed_key,
            s.c.created_at,
            s.c.expires_at,
            s.c.idle_until,
        ).where(s.c.key == _param("token_key"))
        # The guard keeps a slow writer from moving a deadline another one slid further.
        self.slide = (
            s.update()
            .where(s.c.key == _param("token_key"), s.c.idle_until < _param("to"))
            .values(idle_until=_param("to"))
        )
        self.insert_session = s.insert()
        self.rekey = (
            s.update()
            .where(
                user,
                live,
                s.c.key_at <= _param("new_key_at"),
                s.c.sealed_key != _param("sealed"),
            )
            .values(sealed_key=_param("sealed"), key_at=_param("new_key_at"))
        )
        self.user_sessions = (
            sa.select(s.c.key, s.c.created_at).where(user, live).order_by(s.c.created_at)
        )
        self.count_user_sessions = sa.select(sa.func.count()).select_from(s).where(user, live)
        self.delete_session = s.delete().where(s.c.key == _param("token_key"))
        self.delete_user = s.delete().where(user)
        self.openid_keys = sa.select(s.c.key).where(s.c.openid == _param("user_openid"))
        self.sessions_for = (
            sa.select(
                s.c.key,
                s.c.openid,
                s.c.unionid,
                s.c.created_at,
                s.c.expires_at,
                s.c.idle_until,
                s.c.appid,
            )
            .where(s.c.openid == _param("user_openid"), live)
            .order_by(s.c.created_at)
        )

        self.get_code = sa.select(c.c.sealed, c.c.expires_at).where(c.c.key == _param("code_key"))
        self.insert_code = c.insert()
        self.reclaim_code = (
            c.update()
            .where(c.c.key == _param("code_key"), c.c.expires_at <= _param("now"))
            .values(sealed="", expires_at=_param("until"))
        )
        self.complete_code = (
            c.update().where(c.c.key == _param("code_key")).values(sealed=_param("sealed_token"))
        )
        self.release_code = c.delete().where(c.c.key == _param("code_key"), c.c.sealed == "")

        self.get_value = sa.select(v.c.value).where(
            v.c.name == _param("value_name"), v.c.expires_at > _param("now")
        )
        self.set_value = _upsert(dialect, v, "name", ("value", "expires_at"))
        self.delete_value = v.delete().where(
            v.c.name == _param("value_name"), v.c.expires_at > _param("now")
        )

        #: ``SELECT … FOR UPDATE SKIP LOCKED``: a lock row another acquirer holds is skipped.
        self.lock_row = (
            sa.select(lk.c.expires_at)
            .where(lk.c.name == _param("lock_name"))
            .with_for_update(skip_locked=True)
        )
        self.take_lock = (
            lk.update()
            .where(lk.c.name == _param("lock_name"))
            .values(owner=_param("lock_owner"), expires_at=_param("until"))
        )
        self.insert_lock = lk.insert()
        self.release_lock = lk.delete().where(
            lk.c.name == _param("lock_name"),
            lk.c.owner == _param("lock_owner"),
            lk.c.expires_at > _param("now"),
        )

        #: For each table, the primary key column and the expiry column maintenance uses.
        self.expiring: List[Tuple[sa.Table, sa.Column[Any], sa.Column[Any]]] = [
            (s, s.c.key, s.c.idle_until),
            (c, c.c.key, c.c.expires_at),
            (v, v.c.name, v.c.expires_at),
            (lk, lk.c.name, lk.c.expires_at),
        ]

    def expired(self, table: sa.Table) -> Tuple[sa.Select[Any], sa.Column[Any]]:
        """The statement that names up to ``:limit`` expired rows of ``table`` (oldest expiry
        first, through its expiry index), and the column it names them by."""
        for candidate, key, expiry in self.expiring:
            if candidate is table:
                statement = (
                    sa.select(key)
                    .where(expiry <= _param("now"))
                    .order_by(expiry)
                    .limit(_param("limit"))
                )
                return statement, key
        raise KeyError(table.name)

    def delete_expired(self, table: sa.Table, keys: Sequence[str]) -> sa.Delete:
        """Delete the rows of ``table`` that ``keys`` name, if still expired at ``:now`` (a
        session may have been used, so slid, since they were read)."""
        for candidate, key, expiry in self.expiring:
            if candidate is table:
                return table.delete().where(key.in_(list(keys)), expiry <= _param("now"))
        raise KeyError(table.name)


def _upsert(dialect: str, table: sa.Table, key: str, columns: Sequence[str]) -> Any:
    # INSERT ... ON CONFLICT DO UPDATE (PostgreSQL) / ON DUPLICATE KEY UPDATE (MySQL).
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(table)
        return pg.on_conflict_do_update(
            index_elements=[table.c[key]], set_={name: pg.excluded[name] for name in columns}
        )
    from sqlalchemy.dialects.mysql import insert as my_insert

    my = my_insert(table)
    return my.on_duplicate_key_update({name: my.inserted[name] for name in columns})


# --- the schema ---


def ddl(tables: Tables, dialect: Dialect) -> List[str]:
    """The ``CREATE TABLE`` and ``CREATE INDEX`` statements of ``tables`` for ``dialect``
    (each ``IF NOT EXISTS``, so applying them twice is harmless)."""
    statements: List[str] = []
    for table in tables.metadata.sorted_tables:
        statements.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
        for index in sorted(table.indexes, key=lambda index: str(index.name)):
            statements.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))
    return [statement.strip() for statement in statements]


def ensure_schema(conn: Connection, tables: Tables, create: bool) -> None:
    """Check (and with ``create``, make) the schema over ``conn``: a mismatch is a
    ConfigError; a race with another process creating it is tried once more."""
    try:
        problem = prepare_schema(conn, tables, create)
    except DBAPIError:
        # Another process created a table or index between the inspection and ours.
        problem = prepare_schema(conn, tables, create)
    if problem is not None:
        raise mismatch_error(problem, tables.prefix)


def prepare_schema(conn: Connection, tables: Tables, create: bool) -> Optional[str]:
    """Check the store's tables over ``conn``, creating those that are missing when
    ``create`` is set; return what does not match (``None`` when all is well).

    An existing table must have every column the store uses (extra ones are allowed); the
    answer names the table and the missing columns. Without ``create``, a missing table is
    a mismatch too.
    """
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names())
    missing = [table for table in tables.metadata.sorted_tables if table.name not in present]
    if missing and create:
        for table in missing:
            conn.execute(CreateTable(table, if_not_exists=True))
            for index in table.indexes:
                conn.execute(CreateIndex(index, if_not_exists=True))
        missing = []
    if missing:
        return f"the table {missing[0].name} does not exist"
    for table in tables.metadata.sorted_tables:
        if table.name not in present:
            continue
        columns: List[ReflectedColumn] = inspector.get_columns(table.name)
        found = {column["name"].lower() for column in columns}
        lacking = [column.name for column in table.columns if column.name not in found]
        if lacking:
            return f"the table {table.name} lacks the columns {', '.join(lacking)}"
    return None


def mismatch_error(problem: str, prefix: str) -> ConfigError:
    """The :class:`~wxmiddleware.errors.ConfigError` for a schema that does not match."""
    return ConfigError(
        f"the SQL session store's schema does not match: {problem}. It was not made by this"
        " version of wxmiddleware (or another program uses these names): choose another"
        f" table_prefix (now {prefix!r}), or drop the tables and run"
        " `wxmiddleware store init --store URL`"
    )
