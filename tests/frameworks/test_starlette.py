"""The Starlette example through Starlette's own test client."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Iterator

import pytest

from wxmiddleware import WxASGIMiddleware, WxConfig
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

from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

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


ORIGIN = "https://h5.example.com"
# Set apart from the middleware's policy answers (204, Access-Control-Max-Age 600, Expose-Headers
# Retry-After and WWW-Authenticate), so each answer shows which layer gave it.
INNER_MAX_AGE = "86400"
INNER_EXPOSED = "X-Inner-Cors"


@pytest.fixture
def inner_cors(request: pytest.FixtureRequest, fake_wechat_env: FakeWeChat) -> Iterator[Any]:
    """A ``TestClient`` on WxASGIMiddleware wrapping an app whose outer layer is Starlette's
    ``CORSMiddleware`` (the "inside" row of docs/browsers.md). The middleware's
    ``cors_origins`` is the test's indirect parameter, ``(ORIGIN,)`` without one."""

    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"openid": request.user.identity})

    inner = CORSMiddleware(
        Starlette(routes=[Route("/api/me", me)]),
        allow_origins=[ORIGIN],
        allow_methods=["GET", "POST"],
        allow_headers=["3rd-session", "Content-Type"],
        expose_headers=[INNER_EXPOSED],
        max_age=int(INNER_MAX_AGE),
    )
    policy = getattr(request, "param", (ORIGIN,))
    app = WxASGIMiddleware(inner, config=WxConfig.from_env(cors_origins=policy))
    with TestClient(app) as client:
        yield client


NO_POLICY = pytest.param((), id="no-policy")
POLICY = pytest.param((ORIGIN,), id="policy")


def preflight(client: Any, path: str, method: str) -> Any:
    return client.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "3rd-session, content-type",
        },
    )


def assert_inner_cors_answer(answer: Any, method: str) -> None:
    """``answer`` is CORSMiddleware's answer to a preflight for ``method``."""
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert method in answer.headers["access-control-allow-methods"].split(", ")
    allowed = answer.headers["access-control-allow-headers"].lower().split(", ")
    assert {"3rd-session", "content-type"} <= set(allowed)
    assert answer.headers["access-control-max-age"] == INNER_MAX_AGE


@pytest.mark.parametrize("inner_cors", [NO_POLICY, POLICY], indirect=True)
def test_a_preflight_to_a_protected_path_gets_the_inner_cors_answer(inner_cors: Any) -> None:
    # No token (browsers send none with a preflight), with or without the middleware's policy.
    assert_inner_cors_answer(preflight(inner_cors, "/api/me", "GET"), "GET")
    # A bare OPTIONS is no preflight: it needs a token like any request.
    assert inner_cors.options("/api/me").status_code == 401


def test_the_login_preflight_gets_the_policy_answer(inner_cors: Any) -> None:
    answer = preflight(inner_cors, "/wx/login", "POST")
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    # POST, and GET for Wafer's clients (wafer_compat is on by default).
    assert answer.headers["access-control-allow-methods"].split(", ") == ["POST", "GET"]
    allowed = answer.headers["access-control-allow-headers"].lower().split(", ")
    assert {"3rd-session", "content-type"} <= set(allowed)
    assert answer.headers["access-control-max-age"] == "600"
    assert "Origin" in answer.headers["vary"]


@pytest.mark.parametrize("inner_cors", [NO_POLICY], indirect=True)
def test_without_a_policy_the_login_preflight_reaches_the_inner_cors(inner_cors: Any) -> None:
    assert_inner_cors_answer(preflight(inner_cors, "/wx/login", "POST"), "POST")


def test_a_cross_origin_call_with_the_token_carries_the_inner_cors_headers(
    inner_cors: Any, fake_wechat_env: FakeWeChat
) -> None:
    client = inner_cors
    cross_origin = {"Origin": ORIGIN}
    login = client.post(
        "/wx/login", json={"code": fake_wechat_env.issue_code("bob")}, headers=cross_origin
    )
    assert login.status_code == 200
    # The login is the middleware's answer: the policy's headers.
    assert login.headers["access-control-allow-origin"] == ORIGIN
    token = login.json()["3rd_session"]

    answer = client.get("/api/me", headers={**cross_origin, "3rd-session": token})
    assert answer.status_code == 200
    assert answer.json() == {"openid": fake_wechat_env.openid_for("bob")}
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert answer.headers["access-control-expose-headers"] == INNER_EXPOSED

    # Without the token, the middleware's 401 carries the policy's headers, for the page to read.
    refused = client.get("/api/me", headers=cross_origin)
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert INNER_EXPOSED not in refused.headers["access-control-expose-headers"]
