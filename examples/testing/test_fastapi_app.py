from typing import Iterator

import pytest
from fastapi.testclient import TestClient
from fastapi_app import create_app


@pytest.fixture
def client(fake_wechat_env) -> Iterator[TestClient]:
    # fake_wechat_env has set WX_APPID, WX_SECRET, WX_API_BASE (the fake WeChat) and
    # WX_SESSION_STORE (a file in tmp_path): build the app now, not at import.
    with TestClient(create_app()) as client:  # `with`: startup and shutdown run
        yield client


def test_me(client, wx_login, fake_wechat) -> None:
    token = wx_login(client, user="alice")
    reply = client.get("/api/me", headers={"3rd-session": token})
    assert reply.status_code == 200
    assert reply.json() == {"openid": fake_wechat.openid_for("alice")}


def test_me_needs_a_session_but_the_docs_do_not(client) -> None:
    assert client.get("/api/me").status_code == 401
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/api/me"}
