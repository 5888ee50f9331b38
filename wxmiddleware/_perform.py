"""The two performers: the only code that carries out a flow's effects.

A flow (:mod:`wxmiddleware.core._effects`) decides; a performer does what it asks and sends
the result back, or throws the exception back in, where the flow decides what survives.
:class:`SyncPerformer` serves the WSGI middleware and the synchronous API clients,
:class:`AsyncPerformer` the ASGI middleware and the asynchronous ones. They differ only in
``await``; the request-specific effects (reading the body, calling ``on_login``) go to
callables the adapter gives, with the per-request ``context`` (the environ, or the scope and
``receive``) passed through.
"""

from __future__ import annotations

import asyncio
import time
from types import GeneratorType
from typing import Any, Callable, Generic, Mapping, Optional, TypeVar, Union, cast

from .core._effects import CallHook, Flow, HttpCall, ReadBody, Sleep, StoreCall
from .core._pipeline import Outcome, Plan, SessionLookup
from .session import WxSession

_T = TypeVar("_T")
_C = TypeVar("_C")

#: ``request(call: HttpCall) -> (status, body)``: one exchange with WeChat.
Transport = Any
#: ``read_body(context, length, limit) -> bytes`` (see :class:`ReadBody`).
BodyReader = Callable[[_C, Optional[int], int], Any]
#: ``call_hook(context, session, userinfo) -> extra fields or None`` (see :class:`CallHook`).
HookCaller = Callable[[_C, WxSession, Optional[Mapping[str, Any]]], Any]


#: Every effect but a store call, which the run loops perform themselves.
_OtherEffect = Union[HttpCall, Sleep, ReadBody, CallHook]


def _no_request(*_: Any) -> Any:
    raise RuntimeError("this flow has no HTTP request to read from")


class SyncPerformer(Generic[_C]):
    """Runs a flow to its end, performing each effect synchronously.

    ``store`` is a :class:`~wxmiddleware.stores.base.SessionStore`; ``transport`` has
    ``request(call) -> (status, body)`` (a
    :class:`~wxmiddleware.wechat.WeChatClient`); ``read_body``/``call_hook`` serve the
    request effects of the middleware's flow.
    """

    def __init__(
        self,
        store: Any,
        transport: Transport,
        read_body: BodyReader[_C] = _no_request,
        call_hook: HookCaller[_C] = _no_request,
    ) -> None:
        self.store = store
        self.transport = transport
        self._read_body = read_body
        self._call_hook = call_hook

    def run(self, flow: Flow[_T], context: Optional[_C] = None) -> _T:
        """Drive ``flow`` to its return value; ``context`` goes to the request callables."""
        try:
            effect = next(flow)
            while True:
                try:
                    # A store call is most effects of most requests: it skips the dispatch.
                    if isinstance(effect, StoreCall):
                        result = getattr(self.store, effect.op)(*effect.args)
                    else:
                        result = self._perform(effect, context)
                except BaseException as exc:  # handed to the flow, which decides what survives
                    effect = flow.throw(exc)
                else:
                    effect = flow.send(result)
        except StopIteration as stop:
            outcome: _T = stop.value
            return outcome

    def run_request(self, plan: Plan, context: _C) -> Outcome:
        """Carry out a request's plan (:meth:`wxmiddleware.core.Pipeline.handle`)."""
        if type(plan) is SessionLookup:
            try:
                session = self.store.get(plan.token, plan.idle_ttl, plan.scope)
            except Exception as error:  # the lookup decides what an error comes to
                return plan.failed(error)
            return plan.found(session)
        if type(plan) is GeneratorType:
            return self.run(cast("Flow[Outcome]", plan), context)
        return cast(Outcome, plan)

    def _perform(self, effect: _OtherEffect, context: Any) -> Any:
        if isinstance(effect, HttpCall):
            return self.transport.request(effect)
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
            return None
        if isinstance(effect, ReadBody):
            return self._read_body(context, effect.length, effect.limit)
        return self._call_hook(context, effect.session, effect.userinfo)


class AsyncPerformer(Generic[_C]):
    """Runs a flow to its end in the event loop: :class:`SyncPerformer` with ``await``.

    ``store`` is an :class:`~wxmiddleware.stores.base.AsyncSessionStore`; ``transport`` has
    ``async request(...)`` (an :class:`~wxmiddleware.wechat.aio.AsyncWeChatClient`);
    ``read_body`` and ``call_hook`` return awaitables.
    """

    def __init__(
        self,
        store: Any,
        transport: Transport,
        read_body: BodyReader[_C] = _no_request,
        call_hook: HookCaller[_C] = _no_request,
    ) -> None:
        self.store = store
        self.transport = transport
        self._read_body = read_body
        self._call_hook = call_hook

    async def run(self, flow: Flow[_T], context: Optional[_C] = None) -> _T:
        """Drive ``flow`` to its return value; ``context`` goes to the request callables."""
        try:
            effect = next(flow)
            while True:
                try:
                    if isinstance(effect, StoreCall):
                        result = await getattr(self.store, effect.op)(*effect.args)
                    else:
                        result = await self._perform(effect, context)
                except BaseException as exc:  # handed to the flow, which decides what survives
                    effect = flow.throw(exc)
                else:
                    effect = flow.send(result)
        except StopIteration as stop:
            outcome: _T = stop.value
            return outcome

    async def run_request(self, plan: Plan, context: _C) -> Outcome:
        """See :meth:`SyncPerformer.run_request`."""
        if type(plan) is SessionLookup:
            try:
                session = await self.store.get(plan.token, plan.idle_ttl, plan.scope)
            except Exception as error:  # the lookup decides what an error comes to
                return plan.failed(error)
            return plan.found(session)
        if type(plan) is GeneratorType:
            return await self.run(cast("Flow[Outcome]", plan), context)
        return cast(Outcome, plan)

    async def _perform(self, effect: _OtherEffect, context: Any) -> Any:
        if isinstance(effect, HttpCall):
            return await self.transport.request(effect)
        if isinstance(effect, Sleep):
            await asyncio.sleep(effect.seconds)
            return None
        if isinstance(effect, ReadBody):
            return await self._read_body(context, effect.length, effect.limit)
        return await self._call_hook(context, effect.session, effect.userinfo)


__all__ = ["AsyncPerformer", "SyncPerformer"]
