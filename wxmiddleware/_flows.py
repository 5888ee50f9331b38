"""Drivers for sans-IO flows: generators that yield effects and receive their results.

The login (``core.login_flow``) and the access-token flows (``wechat._server_api``) decide
everything; a driver performs each effect with the adapter's own I/O, sync or async, and
throws any failure back into the flow, which decides what survives.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Generator, Optional, TypeVar

_T = TypeVar("_T")


def run_flow(flow: Generator[Any, Any, _T], perform: Callable[[Any], Any]) -> _T:
    """Drive a flow synchronously, performing each effect with ``perform``."""
    result: Any = None
    error: Optional[BaseException] = None
    while True:
        try:
            effect = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as stop:
            outcome: _T = stop.value
            return outcome
        result, error = None, None
        try:
            result = perform(effect)
        except BaseException as exc:  # handed to the flow, which decides what survives
            error = exc


async def run_flow_async(
    flow: Generator[Any, Any, _T], perform: Callable[[Any], Awaitable[Any]]
) -> _T:
    """Drive a flow asynchronously, awaiting ``perform`` for each effect."""
    result: Any = None
    error: Optional[BaseException] = None
    while True:
        try:
            effect = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as stop:
            outcome: _T = stop.value
            return outcome
        result, error = None, None
        try:
            result = await perform(effect)
        except BaseException as exc:  # handed to the flow, which decides what survives
            error = exc
