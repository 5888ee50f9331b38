"""Bottle's plugin and Pyramid's security policy, on their examples through WebTest."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Dict

import pytest

from wxmiddleware.testing import FakeWeChat

from .support import assert_refused, down_store_url

webtest = pytest.importorskip("webtest")


def refused(response: Any, expected: int = 401) -> None:
    assert_refused(response.status_int, dict(response.headers), response.json, expected)


def client_for(
    framework: str, load_example: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> Any:
    pytest.importorskip(framework)
    monkeypatch.setenv("WX_OPTIONAL_PATHS", "/feed/*,/open/*")
    return webtest.TestApp(load_example(f"{framework}_app").app)


def log_in(client: Any, fake: FakeWeChat, user: str) -> Dict[str, str]:
    token = client.post_json("/wx/login", {"code": fake.issue_code(user)}).json["3rd_session"]
    return {"3rd-session": token}


def test_bottle_plugin_injects_the_session(
    load_example: Callable[[str], ModuleType],
    fake_wechat: FakeWeChat,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = client_for("bottle", load_example, monkeypatch)
    headers = log_in(client, fake_wechat, "alice")
    openid = fake_wechat.openid_for("alice")
    assert client.get("/api/me", headers=headers).json["openid"] == openid
    assert client.get("/feed").json == {"items": ["for everyone"]}
    assert client.get("/feed", headers=headers).json["items"][1] == f"for {openid}"
    assert client.get("/feed/mine", headers=headers).json == {"openid": openid}
    assert client.get("/health").json == {"ok": True}  # no parameter: left as it is


def test_bottle_refuses_a_second_plugin_for_the_same_keyword() -> None:
    bottle = pytest.importorskip("bottle")
    from wxmiddleware.integrations.bottle import WxSessionPlugin

    app = bottle.Bottle()
    app.install(WxSessionPlugin())
    with pytest.raises(bottle.PluginError):
        app.install(WxSessionPlugin())
    app.install(WxSessionPlugin(keyword="session"))


@pytest.mark.parametrize("framework", ["bottle", "pyramid"])
@pytest.mark.parametrize("token", [None, "unknown-token", "bad token!"])
def test_bad_tokens_get_the_middlewares_401(
    framework: str,
    token: Any,
    load_example: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = client_for(framework, load_example, monkeypatch)
    headers = {} if token is None else {"3rd-session": token}
    refused(client.get("/api/me", headers=headers, expect_errors=True))
    if framework == "bottle":  # a required session on an optional path: the plugin refuses
        refused(client.get("/feed/mine", headers=headers, expect_errors=True))


@pytest.mark.parametrize("framework", ["bottle", "pyramid"])
def test_a_store_that_is_down_answers_503(
    framework: str, load_example: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("redis")
    monkeypatch.setenv("WX_SESSION_STORE", down_store_url())
    client = client_for(framework, load_example, monkeypatch)
    response = client.get("/api/me", headers={"3rd-session": "a" * 43}, expect_errors=True)
    refused(response, 503)


def test_pyramid_security_policy(
    load_example: Callable[[str], ModuleType],
    fake_wechat: FakeWeChat,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("pyramid")
    from pyramid.authorization import Allow

    module = load_example("pyramid_app")
    monkeypatch.setenv("WX_OPTIONAL_PATHS", "/open/*")
    openid = fake_wechat.openid_for("bob")

    class Context:
        __acl__ = ((Allow, f"openid:{openid}", "edit"),)

        def __init__(self, request: Any) -> None:
            pass

    def whoami(request: Any) -> Dict[str, Any]:
        return {
            "userid": request.authenticated_userid,
            "identity": None if request.identity is None else request.identity.openid,
            "can_read": bool(request.has_permission("read")),
        }

    def edit(request: Any) -> Dict[str, Any]:
        return {"edited": True}

    from pyramid.config import Configurator

    from wxmiddleware import WxConfig, WxMiddleware

    with Configurator(root_factory=module.Root) as config:
        config.include("wxmiddleware.integrations.pyramid")
        config.add_route("whoami", "/open/whoami")
        config.add_route("read", "/open/read")
        config.add_route("edit", "/open/edit", factory=Context)
        config.add_view(whoami, route_name="whoami", renderer="json")
        config.add_view(whoami, route_name="read", renderer="json", permission="read")
        config.add_view(edit, route_name="edit", renderer="json", permission="edit")
        app = WxMiddleware(config.make_wsgi_app(), config=WxConfig.from_env())
    client = webtest.TestApp(app)

    assert client.get("/open/whoami").json == {
        "userid": None,
        "identity": None,
        "can_read": False,
    }
    # A permission denied without a session: the middleware's 401, not Pyramid's HTML 403.
    refused(client.get("/open/read", expect_errors=True))

    headers = log_in(client, fake_wechat, "bob")
    expected = {"userid": openid, "identity": openid, "can_read": True}
    assert client.get("/open/whoami", headers=headers).json == expected
    assert client.get("/open/read", headers=headers).json == expected
    assert client.get("/open/edit", headers=headers).json == {"edited": True}
    # Another user is known, and denied: Pyramid's 403.
    other = log_in(client, fake_wechat, "carol")
    assert client.get("/open/edit", headers=other, expect_errors=True).status_int == 403
