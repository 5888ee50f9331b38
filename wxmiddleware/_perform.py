"""The two performers: the only code that carries out a flow's effects.

A flow (:mod:`wxmiddleware.core._effects`) decides; a performer does what it asks and sends
the result back, or throws the exception back in, where the flow decides what survives.
:class:`SyncPerformer` serves the WSGI middleware and the synchronous API clients,
:class:`AsyncPerformer` the ASGI middleware and the asynchronous ones. They differ only in
``await``; the request-specific effects (reading the body, calling ``on_login`` and the
event hooks) go to callables the adapter gives, with the per-request ``context`` (the
environ, or the scope and ``receive``) passed through.

Every store operation and WeChat call of the package passes through here, so this is where
they are timed: with an :class:`~wxmiddleware.observe.Observer`, each one is an activity of
:meth:`~wxmiddleware.observe.Observer.store_call` or
:meth:`~wxmiddleware.observe.Observer.http_call`; without one, nothing but the call runs.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from functools import lru_cache
from types import GeneratorType
from typing import Any, Callable, Generic, Mapping, Optional, Tuple, TypeVar, Union, cast
from urllib.parse import urlsplit

from .core._effects import (
    CallHook,
    Flow,
    HttpCall,
    Invoke,
    Notify,
    RateCheck,
    ReadBody,
    Sleep,
    StoreCall,
)
from .core._outcomes import ObservedLookup, Outcome, Plan, SessionLookup
from .observe import Observer, reply_facts
from .session import WxSession

_T = TypeVar("_T")
_C = TypeVar("_C")

#: ``request(call: HttpCall) -> (status, body)``: one exchange with WeChat.
Transport = Any
#: What a transport answers: ``(status, body)``, or ``(status, body, headers)`` for an
#: :class:`HttpCall` that names ``reply_headers``.
Reply = Union[Tuple[int, bytes], Tuple[int, bytes, Mapping[str, str]]]
#: ``read_body(context, length, limit) -> bytes`` (see :class:`ReadBody`).
BodyReader = Callable[[_C, Optional[int], int], Any]
#: ``call_hook(context, session, userinfo) -> extra fields or None`` (see :class:`CallHook`).
HookCaller = Callable[[_C, WxSession, Optional[Mapping[str, Any]]], Any]
#: ``notify(context, event, subject) -> None`` (or an awaitable): see :class:`Notify`.
Notifier = Callable[[_C, str, Any], Any]
#: ``hit(client) -> None or seconds to wait`` (or an awaitable of it): see :class:`RateCheck`.
Limiter = Any


#: Every effect but a store call, which the run loops perform themselves.
_OtherEffect = Union[HttpCall, Sleep, ReadBody, CallHook, Notify, RateCheck, Invoke]


def _no_request(*_: Any) -> Any:
    raise RuntimeError("this flow has no HTTP request to read from")


def store_kind(store: Any) -> str:
    """How observers name a store: its class name without ``Async`` and ``Store``, in lower
    case (``RedisStore`` and ``AsyncRedisStore``: ``"redis"``)."""
    name = type(store).__name__
    if name.startswith("Async"):
        name = name[len("Async") :]
    if name.endswith("Store") and name != "Store":
        name = name[: -len("Store")]
    return name.lower()


@lru_cache(maxsize=128)
def api_path(url: str) -> str:
    """How observers name a WeChat API: the path of its URL (never the query, which holds
    the secret or an access token)."""
    return urlsplit(url).path


def _lookup_args(plan: SessionLookup) -> Tuple[Any, ...]:
    return (plan.token, plan.idle_ttl, plan.scope)


class SyncPerformer(Generic[_C]):
    """Runs a flow to its end, performing each effect synchronously.

    ``store`` is a :class:`~wxmiddleware.stores.base.SessionStore`; ``transport`` has
    ``request(call) -> (status, body)`` (a
    :class:`~wxmiddleware.wechat.WeChatClient`); ``read_body``/``call_hook``/``notify``
    serve the request effects of the middleware's flow; ``observer`` times every store and
    WeChat call; ``limiter`` (:class:`~wxmiddleware._ratelimit.LoginLimiter`) counts logins.
    """

    def __init__(
        self,
        store: Any,
        transport: Transport,
        read_body: BodyReader[_C] = _no_request,
        call_hook: HookCaller[_C] = _no_request,
        notify: Notifier[_C] = _no_request,
        *,
        observer: Optional[Observer] = None,
        limiter: Limiter = None,
    ) -> None:
        self.store = store
        self.transport = transport
        self._read_body = read_body
        self._call_hook = call_hook
        self._notify = notify
        self.observer = observer
        self.limiter = limiter
        self._store_kind = store_kind(store)

    def run(self, flow: Flow[_T], context: Optional[_C] = None) -> _T:
        """Drive ``flow`` to its return value; ``context`` goes to the request callables."""
        try:
            effect = next(flow)
            while True:
                try:
                    # A store call is most effects of most requests: it skips the dispatch.
                    if isinstance(effect, StoreCall):
                        if self.observer is None:
                            result = getattr(self.store, effect.op)(*effect.args)
                        else:
                            result = self._store_call(effect.op, effect.args)
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
        kind = type(plan)
        if kind is SessionLookup or kind is ObservedLookup:
            # Annotations, not cast(): no call on every request.
            lookup: SessionLookup = plan  # type: ignore[assignment]
            try:
                if self.observer is None:
                    session = self.store.get(lookup.token, lookup.idle_ttl, lookup.scope)
                else:
                    session = self._store_call("get", _lookup_args(lookup))
            except Exception as error:  # the lookup decides what an error comes to
                plan = lookup.failed(error)
            else:
                if session is not None and kind is SessionLookup:
                    lookup.session = session  # found: the lookup is the Forward
                    return lookup
                plan = lookup.found(session)
                if plan is lookup:
                    return lookup
        if type(plan) is GeneratorType:
            outcome: Outcome = self.run(plan, context)
            return outcome
        return plan  # type: ignore[return-value]

    def _store_call(self, op: str, args: Tuple[Any, ...]) -> Any:
        activity = cast(Observer, self.observer).store_call(self._store_kind, op)
        try:
            result = getattr(self.store, op)(*args)
        except BaseException as error:
            if activity is not None:
                activity.end(error)
            raise
        if activity is not None:
            activity.end()
        return result

    def _http_call(self, call: HttpCall) -> Reply:
        reply: Reply
        if self.observer is None:
            reply = self.transport.request(call)
            return reply
        activity = self.observer.http_call(api_path(call.url), call.method)
        try:
            reply = self.transport.request(call)
        except BaseException as error:
            if activity is not None:
                activity.end(error)
            raise
        if activity is not None:
            activity.end(None, reply_facts(reply[0], reply[1]))
        return reply

    def _perform(self, effect: _OtherEffect, context: Any) -> Any:
        if isinstance(effect, HttpCall):
            return self._http_call(effect)
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
            return None
        if isinstance(effect, ReadBody):
            return self._read_body(context, effect.length, effect.limit)
        if isinstance(effect, RateCheck):
            return self.limiter.hit(effect.client)
        if isinstance(effect, Notify):
            return self._notify(context, effect.event, effect.subject)
        if isinstance(effect, Invoke):
            return effect.function(*effect.args)
        return self._call_hook(context, effect.session, effect.userinfo)


class AsyncPerformer(Generic[_C]):
    """Runs a flow to its end in the event loop: :class:`SyncPerformer` with ``await``.

    ``store`` is an :class:`~wxmiddleware.stores.base.AsyncSessionStore`; ``transport`` has
    ``async request(...)`` (an :class:`~wxmiddleware.wechat.aio.AsyncWeChatClient`);
    ``read_body`` and ``call_hook`` return awaitables; ``notify`` may (an async hook's);
    ``limiter`` is an :class:`~wxmiddleware._ratelimit.AsyncLoginLimiter`.
    """

    def __init__(
        self,
        store: Any,
        transport: Transport,
        read_body: BodyReader[_C] = _no_request,
        call_hook: HookCaller[_C] = _no_request,
        notify: Notifier[_C] = _no_request,
        *,
        observer: Optional[Observer] = None,
        limiter: Limiter = None,
    ) -> None:
        self.store = store
        self.transport = transport
        self._read_body = read_body
        self._call_hook = call_hook
        self._notify = notify
        self.observer = observer
        self.limiter = limiter
        self._store_kind = store_kind(store)

    async def run(self, flow: Flow[_T], context: Optional[_C] = None) -> _T:
        """Drive ``flow`` to its return value; ``context`` goes to the request callables."""
        try:
            effect = next(flow)
            while True:
                try:
                    if isinstance(effect, StoreCall):
                        if self.observer is None:
                            result = await getattr(self.store, effect.op)(*effect.args)
                        else:
                            result = await self._store_call(effect.op, effect.args)
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
        kind = type(plan)
        if kind is SessionLookup or kind is ObservedLookup:
            # Annotations, not cast(): no call on every request.
            lookup: SessionLookup = plan  # type: ignore[assignment]
            try:
                if self.observer is None:
                    session = await self.store.get(lookup.token, lookup.idle_ttl, lookup.scope)
                else:
                    session = await self._store_call("get", _lookup_args(lookup))
            except Exception as error:  # the lookup decides what an error comes to
                plan = lookup.failed(error)
            else:
                if session is not None and kind is SessionLookup:
                    lookup.session = session  # found: the lookup is the Forward
                    return lookup
                plan = lookup.found(session)
                if plan is lookup:
                    return lookup
        if type(plan) is GeneratorType:
            outcome: Outcome = await self.run(plan, context)
            return outcome
        return plan  # type: ignore[return-value]

    async def _store_call(self, op: str, args: Tuple[Any, ...]) -> Any:
        activity = cast(Observer, self.observer).store_call(self._store_kind, op)
        try:
            result = await getattr(self.store, op)(*args)
        except BaseException as error:
            if activity is not None:
                activity.end(error)
            raise
        if activity is not None:
            activity.end()
        return result

    async def _http_call(self, call: HttpCall) -> Reply:
        reply: Reply
        if self.observer is None:
            reply = await self.transport.request(call)
            return reply
        activity = self.observer.http_call(api_path(call.url), call.method)
        try:
            reply = await self.transport.request(call)
        except BaseException as error:
            if activity is not None:
                activity.end(error)
            raise
        if activity is not None:
            activity.end(None, reply_facts(reply[0], reply[1]))
        return reply

    async def _perform(self, effect: _OtherEffect, context: Any) -> Any:
        if isinstance(effect, HttpCall):
            return await self._http_call(effect)
        if isinstance(effect, Sleep):
            await asyncio.sleep(effect.seconds)
            return None
        if isinstance(effect, ReadBody):
            return await self._read_body(context, effect.length, effect.limit)
        if isinstance(effect, RateCheck):
            return await self.limiter.hit(effect.client)
        if isinstance(effect, Notify):
            returned = self._notify(context, effect.event, effect.subject)
            if inspect.isawaitable(returned):
                await returned
            return None
        if isinstance(effect, Invoke):
            result = effect.function(*effect.args)
            return (await result) if inspect.isawaitable(result) else result
        return await self._call_hook(context, effect.session, effect.userinfo)


__all__ = ["AsyncPerformer", "SyncPerformer", "api_path", "store_kind"]
