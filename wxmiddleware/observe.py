"""Observing the middleware: one interface for metrics, traces and log-shipping hooks.

The core (:mod:`wxmiddleware.core`) decides why a request ends as it does, and the two
performers (:mod:`wxmiddleware._perform`) carry out every store and WeChat call; both
report to one :class:`Observer`. The base class does nothing, so an observer overrides
only what it needs; with no observer at all (the default) neither the pipeline nor the
performers call anything, and the per-request path costs what it did before.

Ready-made observers import their libraries only when built:

- :class:`wxmiddleware.observers.prometheus.PrometheusObserver` (``pip install
  "wxmiddleware[prometheus]"``): counters and histograms;
- :class:`wxmiddleware.observers.otel.TracingObserver` (``pip install
  "wxmiddleware[otel]"``): OpenTelemetry spans.

.. code-block:: python

    from wxmiddleware.observers.prometheus import PrometheusObserver

    app.wsgi_app = WxMiddleware(app.wsgi_app, config=config, observers=[PrometheusObserver()])

What an observer is told never holds a secret: no token, code, session_key, access token
or app secret reaches any of its methods; sessions are named by :func:`session_hash`.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, List, Mapping, Optional, Protocol, Tuple

__all__ = [
    "ANONYMOUS",
    "AUTHENTICATED",
    "BAD_REQUEST",
    "EXPIRED",
    "INVALID",
    "MISSING",
    "PREFLIGHT",
    "PUBLIC",
    "RATE_LIMITED",
    "REJECTED",
    "STORE_DOWN",
    "Activity",
    "Observer",
    "Observers",
    "combine",
    "reply_facts",
]

# What became of a request that was not a login or logout (``Observer.request``).
#: A valid session was attached.
AUTHENTICATED = "authenticated"
#: An optional path without a valid session: forwarded without one.
ANONYMOUS = "anonymous"
#: A public path: forwarded untouched, no token read.
PUBLIC = "public"
#: A CORS preflight: forwarded to the app's CORS layer, or answered by the policy.
PREFLIGHT = "preflight"
#: Refused: see :meth:`Observer.rejected` and its reasons below.
REJECTED = "rejected"

# Why a request was refused (``Observer.rejected``, the ``on_reject`` hook, log records).
#: No token was sent (``401``).
MISSING = "missing"
#: The token cannot be one of ours, or two headers named different ones (``401``/``400``).
INVALID = "invalid"
#: A well-formed token with no live session: it expired, was logged out or revoked, or
#: never existed (the stores forget ended sessions, so these look alike) (``401``).
EXPIRED = "expired"
#: The session store failed: the request is refused, never let through (``503``).
STORE_DOWN = "store_down"
#: A login over ``login_rate_limit`` or ``app_login_rate_limit`` (``429``).
RATE_LIMITED = "rate_limited"
#: A near miss of the login or logout path (``/wx/login/``, a wrong method) (``404``/``405``).
BAD_REQUEST = "bad_request"


class Activity(Protocol):
    """Something an observer times: a store operation, a WeChat call, a login.

    ``end`` is called exactly once. ``error`` is the exception the operation raised (``None``
    when it succeeded); ``attributes`` holds what became known on the way (for a WeChat
    call: ``status``, ``errcode`` and ``rid``, see :func:`reply_facts`; for a login:
    ``outcome`` and ``errcode``).
    """

    def end(
        self, error: Optional[BaseException] = None, attributes: Optional[Mapping[str, Any]] = None
    ) -> None:
        """The operation is over."""


class Observer:
    """Receives what the middleware decides and does; every method here does nothing.

    Override what you need. The methods are called synchronously on the request's thread or
    event loop, so they must be quick and must not block (count, record, hand over); an
    exception from one is the request's failure. ``request`` and ``rejected`` run for
    every request, the rest once per login, logout, store operation or WeChat call.
    """

    def request(self, outcome: str) -> None:
        """A request that is not a login or logout went through: ``outcome`` is
        :data:`AUTHENTICATED`, :data:`ANONYMOUS`, :data:`PUBLIC` or :data:`PREFLIGHT`."""

    def rejected(self, reason: str, status: int) -> None:
        """The middleware refused a request with HTTP ``status``; ``reason`` is one of
        :data:`MISSING`, :data:`INVALID`, :data:`EXPIRED`, :data:`STORE_DOWN`,
        :data:`RATE_LIMITED`, :data:`BAD_REQUEST`. A login WeChat refused is not a
        rejection but a :meth:`login` outcome."""

    def login(self, outcome: str, errcode: Optional[int]) -> None:
        """A login ended: ``outcome`` is ``"success"``, ``"replay"`` (a retried code got its
        earlier session) or the error word of its answer (``"invalid_code"``,
        ``"rate_limited"``, ``"upstream_timeout"``…); ``errcode`` is WeChat's, when it gave
        one."""

    def logout(self, ended: bool) -> None:
        """A logout was answered; ``ended`` says whether a live session was ended."""

    def login_started(self) -> Optional[Activity]:
        """A login begins; its store and WeChat calls happen before the activity ends."""
        return None

    def store_call(self, store: str, op: str) -> Optional[Activity]:
        """A store operation begins: ``store`` is the store's kind (``"memory"``,
        ``"sqlite"``, ``"redis"``…), ``op`` the method (``"get"``, ``"save"``…)."""
        return None

    def http_call(self, api: str, method: str) -> Optional[Activity]:
        """A WeChat call begins: ``api`` is the URL path (``"/sns/jscode2session"``),
        ``method`` the HTTP method. Its activity ends with :func:`reply_facts`."""
        return None


class _Activities:
    """Several activities ended together."""

    __slots__ = ("_activities",)

    def __init__(self, activities: List[Activity]) -> None:
        self._activities = activities

    def end(
        self, error: Optional[BaseException] = None, attributes: Optional[Mapping[str, Any]] = None
    ) -> None:
        for activity in self._activities:
            activity.end(error, attributes)


def _started(activities: Iterable[Optional[Activity]]) -> Optional[Activity]:
    started = [activity for activity in activities if activity is not None]
    if not started:
        return None
    return started[0] if len(started) == 1 else _Activities(started)


class Observers(Observer):
    """Several observers as one: every call goes to each, in order."""

    def __init__(self, observers: Iterable[Observer]) -> None:
        self.observers: Tuple[Observer, ...] = tuple(observers)

    def request(self, outcome: str) -> None:
        """See :meth:`Observer.request`."""
        for observer in self.observers:
            observer.request(outcome)

    def rejected(self, reason: str, status: int) -> None:
        """See :meth:`Observer.rejected`."""
        for observer in self.observers:
            observer.rejected(reason, status)

    def login(self, outcome: str, errcode: Optional[int]) -> None:
        """See :meth:`Observer.login`."""
        for observer in self.observers:
            observer.login(outcome, errcode)

    def logout(self, ended: bool) -> None:
        """See :meth:`Observer.logout`."""
        for observer in self.observers:
            observer.logout(ended)

    def login_started(self) -> Optional[Activity]:
        """See :meth:`Observer.login_started`."""
        return _started(observer.login_started() for observer in self.observers)

    def store_call(self, store: str, op: str) -> Optional[Activity]:
        """See :meth:`Observer.store_call`."""
        return _started(observer.store_call(store, op) for observer in self.observers)

    def http_call(self, api: str, method: str) -> Optional[Activity]:
        """See :meth:`Observer.http_call`."""
        return _started(observer.http_call(api, method) for observer in self.observers)


def combine(observers: Optional[Iterable[Observer]]) -> Optional[Observer]:
    """One observer for ``observers``, or ``None`` when there is none (then nothing is
    called at all: the fast path)."""
    given = list(observers or ())
    if not given:
        return None
    return given[0] if len(given) == 1 else Observers(given)


# WeChat puts a request id in errmsg: "invalid code, rid: 6523f1a4-0b1c2d3e-4f5a6b7c".
_RID = re.compile(r"\brid:\s*([0-9A-Za-z-]{1,64})")


def reply_facts(status: int, body: bytes) -> Mapping[str, Any]:
    """What a WeChat reply may tell an observer: ``status`` (HTTP), ``errcode`` (``0`` on
    success, absent when the body is not a JSON object) and ``rid`` (WeChat's request id,
    when its ``errmsg`` names one). Nothing else of the body: it may hold a session_key or an
    access token."""
    facts: dict[str, Any] = {"status": status}
    try:
        data = json.loads(body)
    except ValueError:
        return facts
    if not isinstance(data, dict):
        return facts
    errcode = data.get("errcode", 0)
    if isinstance(errcode, int) and not isinstance(errcode, bool):
        facts["errcode"] = errcode
    errmsg = data.get("errmsg")
    if isinstance(errmsg, str):
        found = _RID.search(errmsg)
        if found:
            facts["rid"] = found.group(1)
    return facts
