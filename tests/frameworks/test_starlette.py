"""The Starlette example through Starlette's own test client."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from wxmiddleware.testing import FakeWeChat

from ..wafer_support import pin_session_key
from .flows import (
    check_contract,
    check_wafer,
    check_websocket_echo,
    check_websocket_refused,
    starlette_call,
    starlette_log_in,
)

pytest.importorskip("starlette")

from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse

EXAMPLE = "starlette_app"  # for the example and client fixtures (conftest.py)


def test_starlette_example(client: Any, fake_wechat: FakeWeChat) -> None:
    check_contract(starlette_call(client), fake_wechat)


def test_wafer_client_on_the_starlette_example(
    client: Any, fake_wechat: FakeWeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cryptography")
    session_key = pin_session_key(monkeypatch)
    check_wafer(starlette_call(client), fake_wechat, session_key)


def test_requires_authenticated(example: ModuleType, client: Any, fake_wechat: FakeWeChat) -> None:
    @requires("authenticated")
    async def feed(request: Request) -> JSONResponse:
        user = request.user
        return JSONResponse({"identity": user.identity, "name": user.display_name})

    example.starlette_app.add_route("/feed", feed)
    # /feed is optional: the middleware lets an anonymous request through, requires() does not.
    assert client.get("/feed").status_code == 403
    token = starlette_log_in(client, fake_wechat, "bob")
    answer = client.get("/feed", headers={"3rd-session": token})
    openid = fake_wechat.openid_for("bob")
    assert answer.json() == {"identity": openid, "name": openid}


def test_websocket(client: Any, fake_wechat: FakeWeChat) -> None:
    check_websocket_refused(client, [{}])
    check_websocket_echo(client, fake_wechat, "3rd_session", "ping")
