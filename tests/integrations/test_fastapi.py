"""FastAPI: the security dependencies (required and optional) on the example, the scheme and
the login path in /openapi.json, and bad input answered as the middleware answers it."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Dict, Iterator

import pytest

from wxmiddleware.testing import FakeWeChat

from ..frameworks.flows import starlette_log_in
from .support import assert_refused, down_store_url

pytest.importorskip("fastapi")

# At module level: FastAPI resolves a route's annotations in the module's globals.
from fastapi import Request

from wxmiddleware.integrations.fastapi import CurrentWxSession


def refused(response: Any, expected: int = 401) -> None:
    assert_refused(response.status_code, dict(response.headers), response.json(), expected)


@pytest.fixture
def example(
    load_example: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    """The example, with /feed/* optional and a route there that requires a session."""
    monkeypatch.setenv("WX_OPTIONAL_PATHS", "/feed/*")
    module = load_example("fastapi_app")

    @module.app.get("/feed/mine")
    async def mine(request: Request, session: CurrentWxSession) -> Dict[str, Any]:
        return {"openid": session.openid, "identity": request.user.identity}

    return module


@pytest.fixture
def client(example: ModuleType) -> Iterator[Any]:
    from starlette.testclient import TestClient

    with TestClient(example.app) as client:
        yield client


def test_required_and_optional_dependencies(client: Any, fake_wechat: FakeWeChat) -> None:
    token = starlette_log_in(client, fake_wechat, "alice")
    openid = fake_wechat.openid_for("alice")
    headers = {"3rd-session": token}
    assert client.get("/api/me", headers=headers).json()["openid"] == openid
    assert client.get("/feed/mine", headers=headers).json() == {
        "openid": openid,
        "identity": openid,
    }
    assert client.get("/feed").json() == {"items": ["for everyone"]}
    assert client.get("/feed", headers=headers).json()["items"][1] == f"for {openid}"


@pytest.mark.parametrize("path", ["/api/me", "/feed/mine"])
@pytest.mark.parametrize("token", [None, "unknown-token", "bad token!"])
def test_bad_tokens_get_the_middlewares_401(client: Any, path: str, token: Any) -> None:
    """The middleware refuses on a protected path; the required dependency on an optional
    one, with the same JSON (install() registered its handler)."""
    headers = {} if token is None else {"3rd-session": token}
    refused(client.get(path, headers=headers))


def test_without_install_fastapi_answers_its_own_401(fake_wechat_env: FakeWeChat) -> None:
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from wxmiddleware import WxASGIMiddleware, WxConfig

    app = FastAPI()
    app.add_middleware(WxASGIMiddleware, config=WxConfig.from_env(optional_paths=["/me"]))

    @app.get("/me")
    async def me(session: CurrentWxSession) -> str:
        return session.openid

    with TestClient(app) as client:
        response = client.get("/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'WxSession realm="wxmiddleware"'
    assert "log in again" in response.json()["detail"]


def test_a_store_that_is_down_answers_503(
    load_example: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("redis")
    from starlette.testclient import TestClient

    monkeypatch.setenv("WX_SESSION_STORE", down_store_url())
    with TestClient(load_example("fastapi_app").app) as client:
        refused(client.get("/api/me", headers={"3rd-session": "a" * 43}), 503)


def test_openapi_declares_the_scheme_and_the_login_path(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["wxSession"] == {
        "type": "apiKey",
        "in": "header",
        "name": "3rd-session",
        "description": "The 3rd_session token that the login path answered.",
    }
    # Swagger's Authorize sends the header to the routes that declare the scheme.
    assert schema["paths"]["/api/me"]["get"]["security"] == [{"wxSession": []}]
    assert schema["paths"]["/feed"]["get"]["security"] == [{"wxSession": []}]
    login = schema["paths"]["/wx/login"]["post"]
    body = login["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["code"] and login["security"] == []
    answer = login["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(answer["properties"]) == {"3rd_session", "expires_in"}
    assert {"401", "429", "503"} <= set(login["responses"])
    assert schema["paths"]["/wx/logout"]["post"]["security"] == [{"wxSession": []}]
    assert client.get("/docs").status_code == 200
