"""The app the multi-worker metrics test serves with gunicorn: /metrics and /slow are public.

Configured from the environment (``WX_*`` and ``PROMETHEUS_MULTIPROC_DIR``); ``/slow``
answers the worker's pid after a pause, so that concurrent requests reach both workers.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable

from wxmiddleware import WxConfig, WxMiddleware
from wxmiddleware.observers.prometheus import PrometheusObserver, metrics_response


def inner(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/metrics":
        body, content_type = metrics_response()
        start_response("200 OK", [("Content-Type", content_type)])
        return [body]
    if path == "/slow":
        time.sleep(0.2)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]


app = WxMiddleware(
    inner,
    config=WxConfig.from_env(appid_check=False),
    public_paths=("/metrics", "/slow", "/health"),
    observers=[PrometheusObserver()],
)
