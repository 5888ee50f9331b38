"""What the SQL stores' operations and runners share: the requests an operation yields, the
races it may lose, and :class:`Steps`, which carries one operation through a runner.

An operation (:mod:`wxmiddleware.stores._sql_ops`) yields a :class:`Call` (one statement and
its parameters) or a transaction :class:`Marker` (:data:`BEGIN`, :data:`COMMIT`); a runner
(:class:`~wxmiddleware.stores.sql.SQLStore`, :class:`~wxmiddleware.stores.sql.AsyncSQLStore`)
performs each and hands back what it returned. A database error becomes, through
:meth:`Steps.answering`, a :class:`Conflict` or :class:`Deadlock` thrown into the operation
(a race it lost, which it decides the meaning of), or a
:class:`~wxmiddleware.errors.StoreUnavailable` whose ``detail`` names nothing secret
(:func:`cause`).
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from typing import Any, Dict, Generator, Generic, Iterator, Optional, TypeVar, Union

from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from ..errors import ConfigError, StoreUnavailable

_T = TypeVar("_T")

#: What opening a connection raises when the database is not there: SQLAlchemy's errors,
#: and what asyncpg raises unwrapped (refused, unknown host, timed out).
CONNECT_ERRORS = (SQLAlchemyError, OSError, asyncio.TimeoutError)


class Call:
    """One statement and its parameters."""

    __slots__ = ("params", "statement")

    def __init__(self, statement: Any, params: Optional[Dict[str, Any]] = None) -> None:
        self.statement = statement
        self.params = params or {}


class Marker:
    """A transaction boundary: the runner sends ``BEGIN``, ``COMMIT`` or ``ROLLBACK``."""

    __slots__ = ("sql",)

    def __init__(self, sql: str) -> None:
        self.sql = sql


BEGIN = Marker("BEGIN")
COMMIT = Marker("COMMIT")
ROLLBACK = Marker("ROLLBACK")

Request = Union[Call, Marker]
#: An operation: yields requests, receives rows (a list of tuples) or a row count.
Operation = Generator[Request, Any, _T]


class Conflict(Exception):
    """A statement lost a race: a unique key another transaction inserted, or a deadlock
    the database resolved against it (its transaction was rolled back)."""


class Deadlock(Conflict):
    """The database broke a deadlock (or a serialization failure) by rolling back this
    statement's transaction; running it again is the documented answer (MySQL 8.0
    reference, "How to Minimize and Handle Deadlocks"; PostgreSQL, "Serialization Failure
    Handling")."""


#: How many times a statement that lost a deadlock runs in all.
DEADLOCK_ATTEMPTS = 3


#: Error codes of a lost race besides IntegrityError: deadlock / serialization failure
#: (SQLSTATE 40001 and PostgreSQL's 40P01; MySQL's error 1213).
RACE_CODES = frozenset({"40001", "40P01", "1213"})


def autocommit(call: Call) -> Operation[Any]:
    """``call`` as one statement outside a transaction, run again (up to
    :data:`DEADLOCK_ATTEMPTS` in all) when it loses a deadlock; returns its reply."""
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        try:
            return (yield call)
        except Deadlock:
            if attempt == DEADLOCK_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


class Steps(Generic[_T]):
    """The requests of one operation, for a runner to answer one at a time.

    The runner iterates, and for each request sets :attr:`reply` inside
    ``with steps.answering():``, which records a database error instead; the runner then
    sends ``ROLLBACK`` when :attr:`in_transaction` says one is open, and the next step hands
    the operation a :class:`Conflict` (a unique key taken) or a
    :class:`~wxmiddleware.errors.StoreUnavailable` (anything else), whose ``detail`` names
    the dialect, the operation and the error's class and code: never a statement, its
    parameters or the URL. After the last request, :attr:`result` is what the operation
    returned. :attr:`stale` says the operation failed at its first statement because the
    pooled connection had died (the database restarted): nothing was done, so the runner
    may run it once more on a fresh connection.
    """

    def __init__(self, operation: Operation[_T], action: str, dialect: str) -> None:
        self._operation = operation
        self._action = action
        self._dialect = dialect
        self._error: Optional[BaseException] = None
        self._sent = 0
        self.reply: Any = None
        self.in_transaction = False
        self.stale = False
        self.result: _T

    def __iter__(self) -> Steps[_T]:
        return self

    def __next__(self) -> Request:
        error, self._error = self._error, None
        try:
            request = (
                self._operation.throw(error)
                if error is not None
                else self._operation.send(self.reply)
            )
        except StopIteration as done:
            self.result = done.value
            raise StopIteration from None
        except Conflict as exc:
            raise self.failure(exc) from None
        if request is BEGIN:
            self.in_transaction = True
        elif request is COMMIT or request is ROLLBACK:
            self.in_transaction = False
        self._sent += 1
        return request

    @property
    def failed(self) -> bool:
        """Whether the last request failed (the next step hands the operation its error)."""
        return self._error is not None

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Where the runner performs a request and sets :attr:`reply`."""
        self.reply = None
        try:
            yield
        except IntegrityError as exc:
            self._error = Conflict(type(exc.orig).__name__)
        except DBAPIError as exc:
            if error_code(exc) in RACE_CODES:
                self._error = Deadlock(type(exc.orig).__name__)
                return
            self.stale = self._sent == 1 and exc.connection_invalidated
            self._error = self.failure(exc)
        except (SQLAlchemyError, OSError, asyncio.TimeoutError) as exc:
            self._error = self.failure(exc)

    @contextmanager
    def preparing(self) -> Iterator[None]:
        """Where the runner checks the schema at a store's first use: its failures are the
        operation's 503."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise self.failure(exc) from None
        except ConfigError as exc:
            raise StoreUnavailable(detail=f"SQL: {exc}") from None

    def failure(self, exc: BaseException) -> StoreUnavailable:
        """The 503 for ``exc``, naming what failed and nothing secret."""
        return StoreUnavailable(detail=f"SQL ({self._dialect}): {self._action}: {cause(exc)}")


def error_code(exc: BaseException) -> Optional[str]:
    """The SQLSTATE (psycopg, asyncpg) or MySQL error number of a driver's error, if any."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code is None and getattr(orig, "args", None):
        first = orig.args[0]  # type: ignore[union-attr]
        code = first if isinstance(first, int) else None
    return None if code is None else str(code)


def cause(exc: BaseException) -> str:
    """The class (and SQLSTATE or error number) of a database error; SQLAlchemy's own text
    holds the statement and its parameters, a driver's may hold the user and host."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return type(exc).__name__
    code = error_code(exc)
    name = f"{type(exc).__name__} ({type(orig).__name__}"
    return f"{name} {code})" if code is not None else f"{name})"
