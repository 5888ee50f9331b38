"""Prometheus metrics (issue 21): counters and histograms move with what the middleware
does, through both adapters; no label holds a secret."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from wxmiddleware.testing import FakeWeChat

from ..middleware.drivers import Driver
from ..middleware.stubs import down_store

prometheus_client = pytest.importorskip("prometheus_client")

from wxmiddleware.observers.prometheus import (  # noqa: E402
    PrometheusObserver,
    metrics_response,
)

SESSION_KEY = "c2Vzc2lvbi1rZXktb2YtdGhlLXRlc3Q="


@pytest.fixture
def registry() -> Iterator[object]:
    yield prometheus_client.CollectorRegistry()


def value(registry: object, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)  # type: ignore[attr-defined]
    return 0.0 if found is None else float(found)


def test_requests_logins_and_rejections_are_counted(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, registry: object
) -> None:
    fake_wechat.session_key_factory = lambda: SESSION_KEY
    app = make_app(observers=[PrometheusObserver(registry)])
    code = fake_wechat.issue_code()
    token = app.post("/wx/login", json={"code": code}).json()["3rd_session"]
    app.post("/wx/login", json={"code": code})
    for errcode in (40029, 45011, 40226, 40013):
        fake_wechat.inject("errcode", errcode=errcode)
        app.post("/wx/login", json={"code": fake_wechat.issue_code()})
    app.me(token)
    app.me(token)
    app.get("/health")
    app.get("/feed")
    app.get("/api/me")
    app.me("C" * 43)
    app.post("/wx/logout", headers=[("3rd-session", token)])

    logins = "wxmiddleware_logins_total"
    assert value(registry, logins, outcome="success", errcode="") == 1
    assert value(registry, logins, outcome="replay", errcode="") == 1
    assert value(registry, logins, outcome="invalid_code", errcode="40029") == 1
    assert value(registry, logins, outcome="rate_limited", errcode="45011") == 1
    assert value(registry, logins, outcome="user_blocked", errcode="40226") == 1
    assert value(registry, logins, outcome="upstream_error", errcode="40013") == 1
    requests = "wxmiddleware_requests_total"
    assert value(registry, requests, outcome="authenticated") == 2
    assert value(registry, requests, outcome="public") == 1
    assert value(registry, requests, outcome="anonymous") == 1
    assert value(registry, requests, outcome="rejected") == 2
    rejections = "wxmiddleware_rejections_total"
    assert value(registry, rejections, reason="missing") == 1
    assert value(registry, rejections, reason="expired") == 1
    assert value(registry, "wxmiddleware_logouts_total", ended="true") == 1
    wechat = "wxmiddleware_wechat_request_duration_seconds_count"
    assert value(registry, wechat, api="/sns/jscode2session") == 5
    store = "wxmiddleware_store_operation_duration_seconds_count"
    assert value(registry, store, store="memory", operation="get") >= 3
    assert value(registry, store, store="memory", operation="save") == 1
    assert value(registry, "wxmiddleware_store_errors_total", store="memory", operation="get") == 0

    body, content_type = metrics_response(registry)
    assert content_type.startswith("text/plain")
    text = body.decode()
    for secret in (token, code, SESSION_KEY, fake_wechat.secret):
        assert secret not in text


def test_store_errors_and_wechat_failures(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, registry: object, adapter: str
) -> None:
    app = make_app(store=down_store(adapter), observers=[PrometheusObserver(registry)])
    assert app.me("D" * 43).status == 503
    assert app.post("/wx/login", json={"code": fake_wechat.issue_code()}).status == 503
    errors = "wxmiddleware_store_errors_total"
    assert value(registry, errors, store="down", operation="get") == 1
    assert value(registry, errors, store="down", operation="claim_code") == 1
    assert value(registry, "wxmiddleware_rejections_total", reason="store_down") == 1
    logins = "wxmiddleware_logins_total"
    assert value(registry, logins, outcome="store_unavailable", errcode="") == 1


def test_wechat_call_errors_are_counted_by_kind(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, registry: object
) -> None:
    app = make_app(observers=[PrometheusObserver(registry)], read_timeout=0.3)
    fake_wechat.inject("slow", delay=2)
    assert app.post("/wx/login", json={"code": fake_wechat.issue_code()}).status == 504
    assert (
        value(
            registry,
            "wxmiddleware_wechat_request_errors_total",
            api="/sns/jscode2session",
            kind="upstream_timeout",
        )
        == 1
    )
    assert value(registry, "wxmiddleware_logins_total", outcome="upstream_timeout", errcode="") == 1


def test_access_token_refreshes_are_counted(fake_wechat: FakeWeChat, registry: object) -> None:
    from wxmiddleware import MemoryStore, WxApi, WxConfig

    config = WxConfig(appid=fake_wechat.appid, secret=fake_wechat.secret, api_base=fake_wechat.url)
    api = WxApi(config, MemoryStore(), observers=[PrometheusObserver(registry)])
    token = api.access_token()
    assert api.access_token() == token
    refreshes = "wxmiddleware_access_token_refreshes_total"
    assert value(registry, refreshes, api="/cgi-bin/stable_token", result="success") == 1
    store = "wxmiddleware_store_operation_duration_seconds_count"
    assert value(registry, store, store="memory", operation="set_value") == 1
    api.close()


def test_one_registry_serves_several_middleware(
    make_app: Callable[..., Driver], registry: object
) -> None:
    first = make_app(observers=[PrometheusObserver(registry)])
    second = make_app(observers=[PrometheusObserver(registry)])
    first.get("/api/me")
    second.get("/api/me")
    assert value(registry, "wxmiddleware_rejections_total", reason="missing") == 2
