"""The FastAPI example through Starlette's test client."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Dict, Iterator, Mapping, Tuple

import pytest

from wxmiddleware import WxSession
from wxmiddleware.testing import FakeWeChat

from .flows import check_contract

pytest.importorskip("fastapi")

from fastapi import Depends, Request
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect


@pytest.fixture
def example(
    load_example: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    monkeypatch.setenv("WX_OPTIONAL_PATHS", "/feed")
    return load_example("fastapi_app")


@pytest.fixture
def client(example: ModuleType) -> Iterator[TestClient]:
    with TestClient(example.app) as client:
        yield client


def log_in(client: TestClient, fake: FakeWeChat, user: str = "alice") -> str:
    token: str = client.post("/wx/login", json={"code": fake.issue_code(user)}).json()[
        "3rd_session"
    ]
    return token


def test_fastapi_example(client: TestClient, fake_wechat: FakeWeChat) -> None:
    def call(method: str, path: str, body: Any, headers: Mapping[str, str]) -> Tuple[int, Any]:
        response = client.request(method, path, json=body, headers=dict(headers))
        return response.status_code, response.json() if response.content else None

    check_contract(call, fake_wechat)


def test_session_dependency_and_request_user(
    example: ModuleType, client: TestClient, fake_wechat: FakeWeChat
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
    token = log_in(client, fake_wechat, "bob")
    openid = fake_wechat.openid_for("bob")
    answer = client.get("/feed", headers={"3rd-session": token})
    assert answer.json() == {"openid": openid, "identity": openid}


def test_websocket(client: TestClient, fake_wechat: FakeWeChat) -> None:
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
        pass
    assert refused.value.code == 4401
    token = log_in(client, fake_wechat)
    with client.websocket_connect("/ws", headers={"3rd_session": token}) as websocket:
        websocket.send_text("ping")
        assert websocket.receive_text() == "ping"
