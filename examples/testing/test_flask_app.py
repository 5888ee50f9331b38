from typing import Iterator

import pytest
from flask.testing import FlaskClient
from flask_app import create_app


@pytest.fixture
def client(fake_wechat_env) -> Iterator[FlaskClient]:
    # fake_wechat_env has set WX_APPID, WX_SECRET, WX_API_BASE (the fake WeChat) and
    # WX_SESSION_STORE (a file in tmp_path): build the app now, not at import.
    app = create_app()
    yield app.test_client()
    app.wsgi_app.close()


def test_me(client, wx_login, fake_wechat) -> None:
    token = wx_login(client, user="alice")
    reply = client.get("/api/me", headers={"3rd-session": token})
    assert reply.status_code == 200
    assert reply.json == {"openid": fake_wechat.openid_for("alice")}


def test_me_needs_a_session(client) -> None:
    assert client.get("/api/me").status_code == 401
    assert client.get("/health").status_code == 200
