"""The FastAPI example through Starlette's test client."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Dict

import pytest

from wxmiddleware import WxSession
from wxmiddleware.testing import FakeWeChat

from .flows import (
    check_contract,
    check_websocket_echo,
    check_websocket_refused,
    starlette_call,
    starlette_log_in,
)

pytest.importorskip("fastapi")

from fastapi import Depends, Request

EXAMPLE = "fastapi_app"  # for the example and client fixtures (conftest.py)


def test_fastapi_example(client: Any, fake_wechat: FakeWeChat) -> None:
    check_contract(starlette_call(client), fake_wechat)


def test_session_dependency_and_request_user(
    example: ModuleType, client: Any, fake_wechat: FakeWeChat
) -> None:
    app = example.app

    @app.get("/feed")
    async def feed(
        request: Request,
        session: WxSession = Depends(example.current_session),  # noqa: B008
    ) -> Dict[str, Any]:
        return {"openid": session.openid, "identity": request.user.identity}

    # /feed is optional: the middleware lets an anonymous request through, the dependency not.
    assert client.get("/feed").status_code == 401
    token = starlette_log_in(client, fake_wechat, "bob")
    openid = fake_wechat.openid_for("bob")
    answer = client.get("/feed", headers={"3rd-session": token})
    assert answer.json() == {"openid": openid, "identity": openid}


def test_websocket(client: Any, fake_wechat: FakeWeChat) -> None:
    check_websocket_refused(client, [{}])
    check_websocket_echo(client, fake_wechat, "3rd_session", "ping")


def test_the_api_docs_are_public(client: Any) -> None:
    assert client.get("/docs").status_code == 200
    assert "/api/me" in client.get("/openapi.json").json()["paths"]
    assert client.get("/api/me").status_code == 401
