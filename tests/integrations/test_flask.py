"""Flask: the WxLogin extension (app.config, init_app, current_wx_session,
@wx_login_required) and the Flask-Login recipe (examples/flask_login_app.py)."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable

import pytest

from wxmiddleware.testing import FakeWeChat

from .support import assert_refused, down_store_url

pytest.importorskip("flask")


def refused(response: Any, expected: int = 401) -> None:
    assert_refused(response.status_code, dict(response.headers), response.get_json(), expected)


@pytest.fixture
def client(load_example: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("WX_OPTIONAL_PATHS", "/feed/*")
    return load_example("flask_app").app.test_client()


def test_current_wx_session_and_optional_paths(client: Any, fake_wechat: FakeWeChat) -> None:
    token = client.post("/wx/login", json={"code": fake_wechat.issue_code("alice")}).get_json()
    headers = {"3rd-session": token["3rd_session"]}
    openid = fake_wechat.openid_for("alice")
    me = client.get("/api/me", headers=headers).get_json()
    assert me == {"openid": openid, "unionid": fake_wechat.unionid_for("alice")}

    assert client.get("/feed").get_json() == {"items": ["for everyone"]}
    mine = client.get("/feed", headers=headers).get_json()
    assert mine == {"items": ["for everyone", f"for {openid}"]}
    assert client.get("/feed/mine", headers=headers).get_json() == {"openid": openid}


@pytest.mark.parametrize("path", ["/api/me", "/feed/mine"])
@pytest.mark.parametrize("token", [None, "unknown-token", "bad token!"])
def test_bad_tokens_get_the_middlewares_401(client: Any, path: str, token: Any) -> None:
    """On a protected path the middleware refuses; on an optional one @wx_login_required
    answers the same JSON."""
    headers = {} if token is None else {"3rd-session": token}
    refused(client.get(path, headers=headers))


def test_a_store_that_is_down_answers_503(
    load_example: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("redis")
    monkeypatch.setenv("WX_SESSION_STORE", down_store_url())
    client = load_example("flask_app").app.test_client()
    refused(client.get("/api/me", headers={"3rd-session": "a" * 43}), 503)


def test_app_config_over_the_environment_and_init_app(
    fake_wechat_env: FakeWeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask import Flask

    from wxmiddleware import WxMiddleware
    from wxmiddleware.integrations.flask import WxLogin, config_from

    monkeypatch.setenv("WX_LOGIN_PATH", "/from-env/login")
    app = Flask(__name__)
    app.config.update(
        WX_LOGIN_PATH="/auth/login",
        WX_PUBLIC_PATHS=["/health", "/static/*"],
        WX_EXPOSE_OPENID=True,
        WX_SESSION_TTL=600,
        WX_SESSION_STORE="memory://",
    )
    config = config_from(app.config)
    assert config.appid == fake_wechat_env.appid  # from the environment
    assert config.login_path == "/auth/login"  # app.config wins
    assert config.public_paths == ("/health", "/static/*")
    assert (config.expose_openid, config.session_ttl) == (True, 600)

    wx = WxLogin()
    middleware = wx.init_app(app)  # an app factory's way
    assert isinstance(app.wsgi_app, WxMiddleware) and app.extensions["wxmiddleware"] is middleware

    @app.get("/health")
    def health() -> Any:
        return {"ok": True}

    client = app.test_client()
    assert client.get("/health").get_json() == {"ok": True}
    login = client.post("/auth/login", json={"code": fake_wechat_env.issue_code("bob")})
    assert login.get_json()["openid"] == fake_wechat_env.openid_for("bob")
    middleware.close()


def test_config_errors_name_the_key(fake_wechat_env: FakeWeChat) -> None:
    from wxmiddleware import ConfigError
    from wxmiddleware.integrations.flask import config_from

    with pytest.raises(ConfigError, match="WX_SESSION_TTL"):
        config_from({"WX_SESSION_TTL": "soon"})
    with pytest.raises(ConfigError, match="WX_APPID"):
        config_from({}, environ={})


def test_flask_login_request_loader_recipe(
    load_example: Callable[[str], ModuleType],
    fake_wechat: FakeWeChat,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("flask_login")
    # /api/me optional: the middleware lets a request without a session through, and
    # Flask-Login's @login_required refuses it with the middleware's 401.
    monkeypatch.setenv("WX_OPTIONAL_PATHS", "/api/me")
    client = load_example("flask_login_app").app.test_client()
    for headers in ({}, {"3rd-session": "unknown-token"}):
        refused(client.get("/api/me", headers=headers))
    token = client.post("/wx/login", json={"code": fake_wechat.issue_code("carol")}).get_json()
    me = client.get("/api/me", headers={"3rd-session": token["3rd_session"]})
    assert me.get_json() == {"openid": fake_wechat.openid_for("carol")}
