"""CORS preflights and the ``cors_origins`` policy (issue 15), through both adapters."""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wxmiddleware import WxConfig
from wxmiddleware.errors import ConfigError
from wxmiddleware.testing import FakeWeChat

from .drivers import Driver, Reply, app_config, assert_error

PAGE = "https://h5.example.com"
OTHER = "https://evil.example.net"


def preflight(
    origin: str = PAGE, method: str = "GET", headers: str = "3rd-session, content-type"
) -> List[Tuple[str, str]]:
    """The headers a browser sends with the preflight of a fetch carrying the token."""
    return [
        ("Origin", origin),
        ("Access-Control-Request-Method", method),
        ("Access-Control-Request-Headers", headers),
    ]


@pytest.fixture
def policy_app(make_app: Callable[..., Driver], fake_wechat: FakeWeChat) -> Driver:
    return make_app(config=app_config(fake_wechat, cors_origins=(PAGE,)))


def assert_reached_app_anonymously(reply: Reply) -> None:
    assert reply.status == 200, reply.body
    assert reply.seen is not None, "the preflight did not reach the app"
    assert reply.seen.session is None and reply.seen.user is None


def assert_cors(reply: Reply, origin: str = PAGE) -> None:
    assert reply.headers["access-control-allow-origin"] == origin
    assert reply.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in reply.headers


class TestPreflightToAppPaths:
    """Browsers strip credentials from preflights: the app's CORS layer must see them."""

    @pytest.mark.parametrize("path", ["/api/me", "/feed", "/health"])
    def test_reaches_the_app_without_a_token(self, app: Driver, path: str) -> None:
        reply = app.request("OPTIONS", path, headers=preflight())
        assert reply.status == 200 and reply.seen is not None
        assert reply.seen.user is None

    def test_protected_path_gets_no_session_even_with_a_token(
        self, app: Driver, fake_wechat: FakeWeChat
    ) -> None:
        token = app.login(fake_wechat)
        reply = app.request("OPTIONS", "/api/me", headers=[*preflight(), ("3rd-session", token)])
        assert_reached_app_anonymously(reply)

    def test_under_a_policy_too(self, policy_app: Driver) -> None:
        reply = policy_app.request("OPTIONS", "/api/me", headers=preflight())
        assert_reached_app_anonymously(reply)
        # The app's CORS layer answers: the middleware adds nothing of its own.
        assert "access-control-allow-origin" not in reply.headers

    @pytest.mark.parametrize(
        "headers",
        [
            [],
            [("Origin", PAGE)],
            [("Access-Control-Request-Method", "GET")],
            [("Origin", ""), ("Access-Control-Request-Method", "GET")],
        ],
        ids=["bare", "origin-only", "method-only", "empty-origin"],
    )
    def test_options_that_is_no_preflight_needs_a_token(
        self, app: Driver, headers: List[Tuple[str, str]]
    ) -> None:
        reply = app.request("OPTIONS", "/api/me", headers=headers)
        assert_error(reply, 401, "invalid_session")
        assert reply.seen is None

    def test_preflight_headers_only_count_on_options(self, app: Driver) -> None:
        assert_error(app.request("GET", "/api/me", headers=preflight()), 401, "invalid_session")
        assert_error(app.request("POST", "/api/me", headers=preflight()), 401, "invalid_session")


class TestPreflightToLoginAndLogout:
    def test_without_a_policy_the_app_answers(self, app: Driver) -> None:
        for path in ("/wx/login", "/wx/logout"):
            reply = app.request("OPTIONS", path, headers=preflight(method="POST"))
            assert_reached_app_anonymously(reply)

    def test_the_policy_answers_the_login_preflight(self, policy_app: Driver) -> None:
        reply = policy_app.request("OPTIONS", "/wx/login", headers=preflight(method="POST"))
        assert reply.status == 204 and reply.body == b""
        assert reply.seen is None
        assert_cors(reply)
        # wafer_compat is on: the Wafer client logs in with GET and its own headers.
        assert reply.headers["access-control-allow-methods"] == "POST, GET"
        allowed = [
            name.strip().lower()
            for name in reply.headers["access-control-allow-headers"].split(",")
        ]
        assert {"3rd-session", "x-wx-skey", "content-type", "x-wx-code"} <= set(allowed)
        assert int(reply.headers["access-control-max-age"]) > 0

    def test_logout_preflight(self, policy_app: Driver) -> None:
        reply = policy_app.request("OPTIONS", "/wx/logout", headers=preflight(method="POST"))
        assert reply.status == 204 and reply.seen is None
        assert_cors(reply)
        assert reply.headers["access-control-allow-methods"] == "POST"

    def test_login_methods_follow_the_config(
        self, make_app: Callable[..., Driver], fake_wechat: FakeWeChat
    ) -> None:
        config = app_config(fake_wechat, cors_origins=(PAGE,), wafer_compat=False)
        reply = make_app(config=config).request("OPTIONS", "/wx/login", headers=preflight())
        assert reply.headers["access-control-allow-methods"] == "POST"
        allowed = reply.headers["access-control-allow-headers"].lower()
        assert "x-wx-code" not in allowed and "3rd-session" in allowed

    def test_an_unlisted_origin_is_allowed_nothing(self, policy_app: Driver) -> None:
        reply = policy_app.request("OPTIONS", "/wx/login", headers=preflight(origin=OTHER))
        assert reply.status == 204 and reply.seen is None
        assert "access-control-allow-origin" not in reply.headers
        assert "access-control-allow-methods" not in reply.headers
        assert reply.headers["vary"] == "Origin"

    def test_any_origin(self, make_app: Callable[..., Driver], fake_wechat: FakeWeChat) -> None:
        app = make_app(config=app_config(fake_wechat, cors_origins="*"))
        reply = app.request("OPTIONS", "/wx/login", headers=preflight(origin=OTHER))
        assert reply.status == 204
        assert_cors(reply, "*")

    def test_trailing_slash_preflight_is_answered_so_the_hint_is_readable(
        self, policy_app: Driver
    ) -> None:
        reply = policy_app.request("OPTIONS", "/wx/login/", headers=preflight(method="POST"))
        assert reply.status == 204 and reply.seen is None
        assert_cors(reply)


class TestAnswersUnderAPolicy:
    """The middleware's own answers carry CORS headers, so a page can read them."""

    def test_401_is_readable_cross_origin(self, policy_app: Driver) -> None:
        reply = policy_app.get("/api/me", headers=[("Origin", PAGE)])
        assert_error(reply, 401, "invalid_session")
        assert_cors(reply)
        exposed = reply.headers["access-control-expose-headers"].lower()
        assert "www-authenticate" in exposed and "retry-after" in exposed

    def test_bare_options_401_too(self, policy_app: Driver) -> None:
        reply = policy_app.request("OPTIONS", "/api/me", headers=[("Origin", PAGE)])
        assert_error(reply, 401, "invalid_session")
        assert_cors(reply)

    def test_login_logout_and_their_errors(
        self, policy_app: Driver, fake_wechat: FakeWeChat
    ) -> None:
        origin = [("Origin", PAGE)]
        login = policy_app.post(
            "/wx/login", json={"code": fake_wechat.issue_code()}, headers=origin
        )
        assert login.status == 200
        assert_cors(login)
        bad = policy_app.post("/wx/login", json={"code": ""}, headers=origin)
        assert_error(bad, 400, "bad_request")
        assert_cors(bad)
        token = login.json()["3rd_session"]
        logout = policy_app.post("/wx/logout", headers=[*origin, ("3rd-session", token)])
        assert logout.status == 204
        assert_cors(logout)

    def test_an_unlisted_origin_gets_no_allow_origin(self, policy_app: Driver) -> None:
        reply = policy_app.get("/api/me", headers=[("Origin", OTHER)])
        assert_error(reply, 401, "invalid_session")
        assert "access-control-allow-origin" not in reply.headers
        assert reply.headers["vary"] == "Origin"

    def test_a_repeated_origin_matches_nothing(self, policy_app: Driver) -> None:
        reply = policy_app.raw("GET", "/api/me", [("Origin", PAGE), ("Origin", PAGE)])
        assert reply.status == 401
        assert "access-control-allow-origin" not in reply.headers

    def test_the_apps_answers_are_the_apps(
        self, policy_app: Driver, fake_wechat: FakeWeChat
    ) -> None:
        token = policy_app.login(fake_wechat)
        reply = policy_app.get("/api/me", headers=[("Origin", PAGE), ("3rd-session", token)])
        assert reply.status == 200 and reply.seen is not None
        assert "access-control-allow-origin" not in reply.headers

    def test_without_a_policy_no_cors_headers(self, app: Driver) -> None:
        reply = app.get("/api/me", headers=[("Origin", PAGE)])
        assert reply.status == 401
        assert "access-control-allow-origin" not in reply.headers
        assert "vary" not in reply.headers


class TestConfig:
    def test_from_env(self) -> None:
        env = {
            "WX_APPID": "wx0123456789abcdef",
            "WX_SECRET": "s",
            "WX_CORS_ORIGINS": f"{PAGE}, http://127.0.0.1:8080",
        }
        assert WxConfig.from_env(env).cors_origins == (PAGE, "http://127.0.0.1:8080")
        assert WxConfig.from_env({**env, "WX_CORS_ORIGINS": "*"}).cors_origins == ("*",)
        assert (
            WxConfig.from_env({"WX_APPID": "wx0123456789abcdef", "WX_SECRET": "s"}).cors_origins
            == ()
        )

    def test_origins_compare_in_lower_case(self) -> None:
        config = WxConfig(
            appid="wx0123456789abcdef", secret="s", cors_origins=["HTTPS://H5.Example.com"]
        )
        assert config.cors_origins == (PAGE,)

    @pytest.mark.parametrize(
        "origins",
        [
            ["https://h5.example.com/"],
            ["https://h5.example.com/app"],
            ["h5.example.com"],
            ["*", PAGE],
            ["https://*.example.com"],
            ["null"],
            [3],
        ],
    )
    def test_refuses_what_is_no_origin(self, origins: List[object]) -> None:
        with pytest.raises(ConfigError, match="cors_origins"):
            WxConfig(appid="wx0123456789abcdef", secret="s", cors_origins=origins)  # type: ignore[arg-type]


class TestPreflightIsNoBypass:
    """Whatever a client sends, a protected path runs the app without a live token only for
    a real preflight, and then without a session."""

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        method=st.sampled_from(["OPTIONS", "GET", "POST", "HEAD", "options"]),
        headers=st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "Origin",
                        "Access-Control-Request-Method",
                        "access_control_request_method",
                        "Access-Control-Request-Headers",
                        "3rd-session",
                    ]
                ),
                st.sampled_from(["", PAGE, "GET", "A" * 43, "null"]),
            ),
            max_size=4,
        ),
    )
    def test_random_options(
        self, policy_app: Driver, method: str, headers: List[Tuple[str, str]]
    ) -> None:
        reply = policy_app.raw(method, "/api/me", headers)
        assert reply.status < 500
        if reply.seen is None:
            assert reply.status in (400, 401), reply.body
            return
        # As servers present them: "_" read as "-", repeats joined with commas.
        joined: Dict[str, List[str]] = {}
        for name, value in headers:
            joined.setdefault(name.lower().replace("_", "-"), []).append(value)
        assert method == "OPTIONS"
        assert ",".join(joined.get("origin", []))
        assert ",".join(joined.get("access-control-request-method", []))
        assert reply.seen.session is None
