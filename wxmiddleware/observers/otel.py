"""OpenTelemetry traces for the middleware (``pip install "wxmiddleware[otel]"``: the API
only; the app chooses the SDK and exporter).

.. code-block:: python

    from wxmiddleware.observers.otel import TracingObserver

    app.wsgi_app = WxMiddleware(app.wsgi_app, config=config, observers=[TracingObserver()])

Spans (children of the server's span when ``opentelemetry-instrumentation-wsgi`` or
``-asgi`` runs in front, as they make it the current span):

- ``wxmiddleware.login`` (internal): one login, with ``wxmiddleware.login.outcome`` and
  ``wechat.errcode``; its WeChat and store spans are its children;
- ``WeChat <METHOD> <path>`` (client): one WeChat call, with ``http.request.method``,
  ``url.path``, ``http.response.status_code``, ``wechat.errcode``, ``wechat.rid``;
- ``wxmiddleware.store <op>`` (client): one store operation, with ``wxmiddleware.store``
  (its kind) and ``wxmiddleware.store.operation``.

A failed operation's span has status ERROR and an ``error.type`` (the error word or the
exception class); no exception message is recorded. No attribute ever holds a secret,
code, token, session_key or the query string sent to WeChat.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ..observe import Activity, Observer

__all__ = ["TracingObserver"]


def _error_type(error: BaseException) -> str:
    word = getattr(error, "error", None)
    return word if isinstance(word, str) else type(error).__name__


class _Span:
    """An activity that is an OpenTelemetry span; ``current`` spans are the parent of the
    spans started before they end (the login's)."""

    __slots__ = ("_context", "_span", "_status", "_token")

    def __init__(self, span: Any, status: Any, context: Any = None) -> None:
        self._span = span
        self._status = status
        self._context = context
        self._token = None
        if context is not None:
            from opentelemetry import trace

            self._token = context.attach(trace.set_span_in_context(span))

    def end(
        self, error: Optional[BaseException] = None, attributes: Optional[Mapping[str, Any]] = None
    ) -> None:
        span = self._span
        for name, value in (attributes or {}).items():
            key = _ATTRIBUTES.get(name)
            if key is not None and value is not None:
                span.set_attribute(key, value)
        if error is not None:
            span.set_attribute("error.type", _error_type(error))
            span.set_status(self._status.ERROR, _error_type(error))
        if self._token is not None:
            self._context.detach(self._token)
        span.end()


#: What an activity's attributes become on its span; nothing else is recorded.
_ATTRIBUTES = {
    "status": "http.response.status_code",
    "errcode": "wechat.errcode",
    "rid": "wechat.rid",
    "outcome": "wxmiddleware.login.outcome",
}


class TracingObserver(Observer):
    """Makes OpenTelemetry spans of logins, WeChat calls and store operations.

    ``tracer_provider`` is the provider to take the tracer from (the global one by
    default). Raises ``ImportError`` naming the extra when ``opentelemetry-api`` is not
    installed. Requests that are not logins make a span only for their store lookup.
    """

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import context, trace
        except ImportError:
            raise ImportError(
                'TracingObserver needs opentelemetry-api: pip install "wxmiddleware[otel]"'
            ) from None
        from .. import __version__

        self._tracer = trace.get_tracer("wxmiddleware", __version__, tracer_provider)
        self._client = trace.SpanKind.CLIENT
        self._internal = trace.SpanKind.INTERNAL
        self._status = trace.StatusCode
        self._context = context

    def login_started(self) -> Activity:
        """See :meth:`Observer.login_started`: the span is current until the login ends."""
        span = self._tracer.start_span("wxmiddleware.login", kind=self._internal)
        return _Span(span, self._status, self._context)

    def store_call(self, store: str, op: str) -> Activity:
        """See :meth:`Observer.store_call`."""
        span = self._tracer.start_span(
            f"wxmiddleware.store {op}",
            kind=self._client,
            attributes={"wxmiddleware.store": store, "wxmiddleware.store.operation": op},
        )
        return _Span(span, self._status)

    def http_call(self, api: str, method: str) -> Activity:
        """See :meth:`Observer.http_call`."""
        span = self._tracer.start_span(
            f"WeChat {method} {api}",
            kind=self._client,
            attributes={"http.request.method": method, "url.path": api},
        )
        return _Span(span, self._status)
