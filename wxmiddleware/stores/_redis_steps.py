"""How a Redis store's runner carries one operation (:mod:`._redis_ops`): :class:`Steps`
hands it each reply, or the redis-py error a round trip raised.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Generic, Iterator, Optional, TypeVar, Union

from ._redis_layout import REDIS_ERRORS, Batch, Operation, ScanPage

_T = TypeVar("_T")


class Steps(Generic[_T]):
    """The requests of one operation, for a runner to answer one at a time.

    The runner iterates, and for each request sets :attr:`reply` inside
    ``with steps.answering():``, which hands a redis-py error to the operation instead (it
    raises :class:`~wxmiddleware.errors.StoreUnavailable`). After the last request,
    :attr:`result` is what the operation returned.
    """

    def __init__(self, operation: Operation[_T]) -> None:
        self._operation = operation
        self._error: Optional[BaseException] = None
        self.reply: Any = None
        self.result: _T

    def __iter__(self) -> Steps[_T]:
        return self

    def __next__(self) -> Union[Batch, ScanPage]:
        error, self._error = self._error, None
        try:
            if error is not None:
                return self._operation.throw(error)
            return self._operation.send(self.reply)
        except StopIteration as done:
            self.result = done.value
            raise StopIteration from None

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Where the runner performs a request and sets :attr:`reply`."""
        self.reply = None
        try:
            yield
        except REDIS_ERRORS as exc:
            self._error = exc
