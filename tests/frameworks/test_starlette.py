"""The Starlette example through Starlette's own test client."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Iterator, Mapping, Tuple

import pytest

from wxmiddleware.testing import FakeWeChat

from ..wafer_support import pin_session_key
from .flows import check_contract, check_wafer

pytest.importorskip("starlette")

from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect


@pytest.fixture
def example(
    load_example: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    monkeypatch.setenv("WX_OPTIONAL_PATHS", "/feed")
    return load_example("starlette_app")


@pytest.fixture
def client(example: ModuleType) -> Iterator[TestClient]:
    with TestClient(example.app) as client:
        yield client


def log_in(client: TestClient, fake: FakeWeChat, user: str = "alice") -> str:
    token: str = client.post("/wx/login", json={"code": fake.issue_code(user)}).json()[
        "3rd_session"
    ]
    return token


def test_starlette_example(client: TestClient, fake_wechat: FakeWeChat) -> None:
    def call(method: str, path: str, body: Any, headers: Mapping[str, str]) -> Tuple[int, Any]:
        response = client.request(method, path, json=body, headers=dict(headers))
        return response.status_code, response.json() if response.content else None

    check_contract(call, fake_wechat)


def test_wafer_client_on_the_starlette_example(
    client: TestClient, fake_wechat: FakeWeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cryptography")
    session_key = pin_session_key(monkeypatch)

    def call(method: str, path: str, body: Any, headers: Mapping[str, str]) -> Tuple[int, Any]:
        response = client.request(method, path, json=body, headers=dict(headers))
        return response.status_code, response.json() if response.content else None

    check_wafer(call, fake_wechat, session_key)


def test_requires_authenticated(
    example: ModuleType, client: TestClient, fake_wechat: FakeWeChat
) -> None:
    @requires("authenticated")
    async def feed(request: Request) -> JSONResponse:
        user = request.user
        return JSONResponse({"identity": user.identity, "name": user.display_name})

    example.starlette_app.add_route("/feed", feed)
    # /feed is optional: the middleware lets an anonymous request through, requires() does not.
    assert client.get("/feed").status_code == 403
    token = log_in(client, fake_wechat, "bob")
    answer = client.get("/feed", headers={"3rd-session": token})
    openid = fake_wechat.openid_for("bob")
    assert answer.json() == {"identity": openid, "name": openid}


def test_websocket(client: TestClient, fake_wechat: FakeWeChat) -> None:
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
        pass
    assert refused.value.code == 4401
    token = log_in(client, fake_wechat)
    with client.websocket_connect("/ws", headers={"3rd_session": token}) as websocket:
        websocket.send_text("ping")
        assert websocket.receive_text() == "ping"
