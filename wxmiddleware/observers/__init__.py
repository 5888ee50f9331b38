"""Ready-made observers (:class:`wxmiddleware.observe.Observer`), each importing its library
only when built.

- :mod:`.prometheus`: :class:`~.prometheus.PrometheusObserver`, counters and histograms
  (``pip install "wxmiddleware[prometheus]"``);
- :mod:`.otel`: :class:`~.otel.TracingObserver`, OpenTelemetry spans (``pip install
  "wxmiddleware[otel]"``).

``docs/operations.md`` lists every metric and span.
"""
