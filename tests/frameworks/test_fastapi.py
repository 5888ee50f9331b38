"""The FastAPI example through Starlette's test client."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import pytest

from wxmiddleware.testing import FakeWeChat

from .flows import (
    check_contract,
    check_websocket_echo,
    check_websocket_refused,
    starlette_call,
    starlette_log_in,
)

pytest.importorskip("fastapi")


EXAMPLE = "fastapi_app"  # for the example and client fixtures (conftest.py)


def test_fastapi_example(client: Any, fake_wechat: FakeWeChat) -> None:
    check_contract(starlette_call(client), fake_wechat)


def test_optional_session_dependency(client: Any, fake_wechat: FakeWeChat) -> None:
    # /feed is optional: the middleware lets an anonymous request through.
    assert client.get("/feed").json() == {"items": ["for everyone"]}
    token = starlette_log_in(client, fake_wechat, "bob")
    openid = fake_wechat.openid_for("bob")
    answer = client.get("/feed", headers={"3rd-session": token})
    assert answer.json() == {"items": ["for everyone", f"for {openid}"]}


def test_websocket(client: Any, fake_wechat: FakeWeChat) -> None:
    check_websocket_refused(client, [{}])
    check_websocket_echo(client, fake_wechat, "3rd_session", "ping")


def test_the_api_docs_are_public(client: Any) -> None:
    assert client.get("/docs").status_code == 200
    assert "/api/me" in client.get("/openapi.json").json()["paths"]
    assert client.get("/api/me").status_code == 401


def test_the_fastapi_example_serves_metrics(client: Any, fake_wechat: FakeWeChat) -> None:
    parser = pytest.importorskip("prometheus_client.parser")

    def scrape() -> Tuple[str, Dict[str, float]]:
        """The /metrics text and its login and authenticated-request counts."""
        metrics = client.get("/metrics")  # public: no token
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        counts = {"success": 0.0, "authenticated": 0.0}
        for family in parser.text_string_to_metric_families(metrics.text):
            for sample in family.samples:
                if sample.name in ("wxmiddleware_logins_total", "wxmiddleware_requests_total"):
                    outcome = sample.labels["outcome"]
                    if outcome in counts:
                        counts[outcome] += sample.value
        return metrics.text, counts

    _, before = scrape()
    token = starlette_log_in(client, fake_wechat)
    assert client.get("/api/me", headers={"3rd-session": token}).status_code == 200
    text, after = scrape()
    assert after == {"success": before["success"] + 1, "authenticated": before["authenticated"] + 1}
    assert token not in text
    # Served, but kept out of the API docs.
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
