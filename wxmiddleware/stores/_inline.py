"""Asynchronous methods that run a synchronous store's methods inline, written once.

:class:`~wxmiddleware.stores.aio.AsyncMemoryStore` declares each protocol method as
``get = InlineAsync(MemoryStore.get)``: the async method runs ``self.sync.get`` in the
event loop, as a store whose calls never wait may.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Dict, Generic, List, TypeVar, overload

if TYPE_CHECKING:
    from typing import Concatenate, ParamSpec

    _P = ParamSpec("_P")
else:
    # Python 3.9 has no ParamSpec; only type checkers read _P.
    _P = TypeVar("_P")

_T = TypeVar("_T")


class InlineAsync(Generic[_P, _T]):
    """Declares an async method that returns ``self.sync.<name>(...)``.

    When the class is created, the declaration is replaced by a coroutine function generated
    from the parameters (names and defaults) of the sync method, the very function one would
    write by hand: ``async def get(self, token, idle_ttl): return self.sync.get(token,
    idle_ttl)``. Spelled out, not ``*args, **kwargs``, whose packing would cost a third more
    on ``get``, which runs on every authenticated request. Type checkers see the declaration:
    an async method with the sync method's parameters and result.
    """

    def __init__(self, method: Callable[Concatenate[Any, _P], _T]) -> None:
        self._method = method

    def __set_name__(self, owner: type, name: str) -> None:
        function = _forwarding_coroutine_function(self._method, name)
        function.__qualname__ = f"{owner.__qualname__}.{name}"
        setattr(owner, name, function)

    @overload
    def __get__(self, store: None, owner: Any) -> InlineAsync[_P, _T]: ...

    @overload
    def __get__(self, store: object, owner: Any) -> Callable[_P, Coroutine[Any, Any, _T]]: ...

    def __get__(self, store: Any, owner: Any) -> Any:
        raise AssertionError("replaced by a coroutine function when its class was created")


def _forwarding_coroutine_function(method: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``async def <name>(self, <parameters>): return self.sync.<name>(<parameters>)``, with
    the parameters after ``self`` of ``method``; the source holds only their names."""
    namespace: Dict[str, Any] = {}
    declared: List[str] = ["self"]
    names: List[str] = []
    for param in list(inspect.signature(method).parameters.values())[1:]:
        if param.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
            raise TypeError(f"{method.__qualname__}: only plain parameters can be forwarded")
        names.append(param.name)
        if param.default is inspect.Parameter.empty:
            declared.append(param.name)
        else:
            namespace[f"default_{param.name}"] = param.default
            declared.append(f"{param.name}=default_{param.name}")
    source = (
        f"async def {name}({', '.join(declared)}):\n"
        f"    return self.sync.{method.__name__}({', '.join(names)})\n"
    )
    exec(source, namespace)  # noqa: S102 - built above from identifiers of our own method
    function: Callable[..., Any] = namespace[name]
    function.__doc__ = method.__doc__
    return function
