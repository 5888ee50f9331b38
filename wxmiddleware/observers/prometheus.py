"""Prometheus metrics for the middleware (``pip install "wxmiddleware[prometheus]"``).

.. code-block:: python

    from wxmiddleware.observers.prometheus import PrometheusObserver, metrics_response

    app.wsgi_app = WxMiddleware(
        app.wsgi_app, config=config, observers=[PrometheusObserver()],
        public_paths=("/metrics",),
    )

    @app.get("/metrics")
    def metrics():
        body, content_type = metrics_response()
        return body, 200, {"Content-Type": content_type}

Metrics (``docs/operations.md`` has the full list and a Grafana dashboard):

- ``wxmiddleware_requests_total{outcome}``: requests that were not logins or logouts, by
  ``authenticated``, ``anonymous``, ``public``, ``preflight`` or ``rejected``;
- ``wxmiddleware_rejections_total{reason}``: refusals, by reason (``missing``,
  ``invalid``, ``expired``, ``store_down``, ``rate_limited``, ``bad_request``);
- ``wxmiddleware_logins_total{outcome,errcode}``: logins by outcome (``success``,
  ``replay`` or the error word) and WeChat's errcode (``""`` when none);
- ``wxmiddleware_logouts_total{ended}``: logouts, ``ended`` ``"true"`` when a live
  session ended;
- ``wxmiddleware_wechat_request_duration_seconds{api}``: every WeChat call (histogram),
  by API path; ``wxmiddleware_wechat_request_errors_total{api,kind}``: calls that raised
  (``kind`` is the error word: ``upstream_timeout``…);
- ``wxmiddleware_store_operation_duration_seconds{store,operation}`` (histogram) and
  ``wxmiddleware_store_errors_total{store,operation}``;
- ``wxmiddleware_access_token_refreshes_total{api,result}``: access-token fetches from
  ``/cgi-bin/stable_token`` or ``/cgi-bin/token``, ``result`` ``success`` or ``error``.

Under gunicorn (or any server with several worker processes) set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the workers start: the metrics are
then kept in files there, and :func:`metrics_response` adds up every worker's. No label
ever holds a token, code, session_key or secret.
"""

from __future__ import annotations

import os
import time
import weakref
from typing import Any, Dict, Mapping, Optional, Tuple

from ..observe import (
    ANONYMOUS,
    AUTHENTICATED,
    PREFLIGHT,
    PUBLIC,
    REJECTED,
    Activity,
    Observer,
)

__all__ = ["PrometheusObserver", "metrics_response"]

#: WeChat answers within a second when healthy; the timeouts end a call after 7 s.
WECHAT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0)
#: A store operation takes microseconds (memory), a millisecond (SQLite, Redis on a LAN).
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
#: The paths of WeChat's access-token endpoints: a call to one is a refresh.
TOKEN_APIS = frozenset({"/cgi-bin/token", "/cgi-bin/stable_token"})

_OUTCOMES = (AUTHENTICATED, ANONYMOUS, PUBLIC, PREFLIGHT, REJECTED)


class _Metrics:
    """The metric families of one registry (each may be registered only once)."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        def counter(name: str, doc: str, labels: Tuple[str, ...]) -> Any:
            return Counter(name, doc, labels, namespace="wxmiddleware", registry=registry)

        self.requests = counter(
            "requests", "Requests that were not logins or logouts, by outcome.", ("outcome",)
        )
        self.rejections = counter(
            "rejections", "Requests the middleware refused, by reason.", ("reason",)
        )
        self.logins = counter(
            "logins", "Logins by outcome and WeChat errcode.", ("outcome", "errcode")
        )
        self.logouts = counter("logouts", "Logouts; ended: a live session ended.", ("ended",))
        self.wechat_duration = Histogram(
            "wechat_request_duration_seconds",
            "WeChat API calls by API path, in seconds.",
            ("api",),
            namespace="wxmiddleware",
            registry=registry,
            buckets=WECHAT_BUCKETS,
        )
        self.wechat_errors = counter(
            "wechat_request_errors", "WeChat API calls that failed to complete.", ("api", "kind")
        )
        self.store_duration = Histogram(
            "store_operation_duration_seconds",
            "Session store operations, in seconds.",
            ("store", "operation"),
            namespace="wxmiddleware",
            registry=registry,
            buckets=STORE_BUCKETS,
        )
        self.store_errors = counter(
            "store_errors", "Session store operations that raised.", ("store", "operation")
        )
        self.token_refreshes = counter(
            "access_token_refreshes", "Access-token fetches from WeChat.", ("api", "result")
        )


_families: weakref.WeakKeyDictionary[Any, _Metrics] = weakref.WeakKeyDictionary()


def _metrics_of(registry: Any) -> _Metrics:
    metrics = _families.get(registry)
    if metrics is None:
        metrics = _families[registry] = _Metrics(registry)
    return metrics


def _error_kind(error: BaseException) -> str:
    word = getattr(error, "error", None)
    return word if isinstance(word, str) else type(error).__name__


class _Timed:
    """An activity that observes its duration into a histogram child, and counts an error."""

    __slots__ = ("_duration", "_errors", "_started")

    def __init__(self, duration: Any, errors: Any) -> None:
        self._duration = duration
        self._errors = errors
        self._started = time.perf_counter()

    def end(
        self, error: Optional[BaseException] = None, attributes: Optional[Mapping[str, Any]] = None
    ) -> None:
        self._duration.observe(time.perf_counter() - self._started)
        if error is not None:
            self._errors.inc()


class _WeChatCall:
    """A WeChat call's activity: its duration, its failure, and a token refresh."""

    __slots__ = ("_api", "_metrics", "_started")

    def __init__(self, metrics: _Metrics, api: str) -> None:
        self._metrics = metrics
        self._api = api
        self._started = time.perf_counter()

    def end(
        self, error: Optional[BaseException] = None, attributes: Optional[Mapping[str, Any]] = None
    ) -> None:
        metrics, api = self._metrics, self._api
        metrics.wechat_duration.labels(api).observe(time.perf_counter() - self._started)
        if error is not None:
            metrics.wechat_errors.labels(api, _error_kind(error)).inc()
        if api in TOKEN_APIS:
            facts = attributes or {}
            ok = error is None and facts.get("status") == 200 and not facts.get("errcode")
            metrics.token_refreshes.labels(api, "success" if ok else "error").inc()


class PrometheusObserver(Observer):
    """Counts and times what the middleware does into Prometheus metrics.

    ``registry`` is the ``prometheus_client`` registry (the default one by default); the
    metric families are created once per registry, so several middleware (or a middleware
    and a :class:`~wxmiddleware.WxApi`) may share it. Raises ``ImportError`` naming the extra
    when ``prometheus-client`` is not installed.
    """

    def __init__(self, registry: Any = None) -> None:
        try:
            import prometheus_client
        except ImportError:
            raise ImportError(
                'PrometheusObserver needs prometheus-client: pip install "wxmiddleware[prometheus]"'
            ) from None
        self.registry = prometheus_client.REGISTRY if registry is None else registry
        self._metrics = metrics = _metrics_of(self.registry)
        # Children bound once: a request's count is one dict lookup and an increment.
        self._requests = {outcome: metrics.requests.labels(outcome) for outcome in _OUTCOMES}
        self._stores: Dict[Tuple[str, str], Tuple[Any, Any]] = {}

    def request(self, outcome: str) -> None:
        """See :meth:`Observer.request`."""
        self._requests[outcome].inc()

    def rejected(self, reason: str, status: int) -> None:
        """See :meth:`Observer.rejected`."""
        self._requests[REJECTED].inc()
        self._metrics.rejections.labels(reason).inc()

    def login(self, outcome: str, errcode: Optional[int]) -> None:
        """See :meth:`Observer.login`."""
        self._metrics.logins.labels(outcome, "" if errcode is None else str(errcode)).inc()

    def logout(self, ended: bool) -> None:
        """See :meth:`Observer.logout`."""
        self._metrics.logouts.labels("true" if ended else "false").inc()

    def store_call(self, store: str, op: str) -> Activity:
        """See :meth:`Observer.store_call`."""
        children = self._stores.get((store, op))
        if children is None:
            metrics = self._metrics
            children = self._stores[(store, op)] = (
                metrics.store_duration.labels(store, op),
                metrics.store_errors.labels(store, op),
            )
        return _Timed(*children)

    def http_call(self, api: str, method: str) -> Activity:
        """See :meth:`Observer.http_call`."""
        return _WeChatCall(self._metrics, api)


def metrics_response(registry: Any = None) -> Tuple[bytes, str]:
    """``(body, content_type)`` of a ``/metrics`` answer in Prometheus' text format.

    With ``PROMETHEUS_MULTIPROC_DIR`` set (several worker processes), the body adds up every
    worker's metrics from that directory; else it is ``registry`` (the default registry by
    default).
    """
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    if registry is None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import CollectorRegistry, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(REGISTRY if registry is None else registry), CONTENT_TYPE_LATEST
