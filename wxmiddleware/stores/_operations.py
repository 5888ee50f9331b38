"""A store method declared once, for the stores whose operations are generators.

The Redis and SQL stores write each operation once, as a generator of requests (command
batches, statements) that a runner carries out: the synchronous store's ``_run`` returns the
operation's result, the asynchronous store's ``_run`` is a coroutine of it. A class of
store methods declares ``get = StoreOperation(Operations.get)``; bound to a store, the
descriptor hands the operation to that store's runner. Type checkers tell the two kinds of
store apart by their ``asynchronous`` attribute.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Generator, Generic, TypeVar, overload

if TYPE_CHECKING:
    from typing import Concatenate, Literal, ParamSpec, Protocol

    _P = ParamSpec("_P")

    class SyncRunner(Protocol):
        """A store whose ``_run`` returns an operation's result."""

        asynchronous: Literal[False]

    class AsyncRunner(Protocol):
        """A store whose ``_run`` is a coroutine of an operation's result."""

        asynchronous: Literal[True]

else:
    # Python 3.9 has no ParamSpec; only type checkers read _P.
    _P = TypeVar("_P")

_O = TypeVar("_O")
_T = TypeVar("_T")

__all__ = ["StoreOperation"]


class StoreOperation(Generic[_O, _P, _T]):
    """``operation`` (a method of the store's operations class returning a generator) as a
    store method: bound to a store, it starts the operation and hands it to the store's
    runner, whose answer it returns."""

    def __init__(self, operation: Callable[Concatenate[_O, _P], Generator[Any, Any, _T]]) -> None:
        self._operation = operation
        self.__doc__ = operation.__doc__

    @overload
    def __get__(self, store: None, owner: Any) -> StoreOperation[_O, _P, _T]: ...

    @overload
    def __get__(self, store: AsyncRunner, owner: Any) -> Callable[_P, Coroutine[Any, Any, _T]]: ...

    @overload
    def __get__(self, store: SyncRunner, owner: Any) -> Callable[_P, _T]: ...

    def __get__(self, store: Any, owner: Any) -> Any:
        if store is None:
            return self
        return functools.partial(store._run, self._operation)
