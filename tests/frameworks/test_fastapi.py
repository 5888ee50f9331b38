"""The FastAPI example through Starlette's test client."""

from __future__ import annotations

from typing import Any

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
