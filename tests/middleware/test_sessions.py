"""Tokens, protected/public/optional paths and logout, through both adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Union

import pytest

from wxmiddleware.testing import FakeWeChat

from .drivers import Driver, app_config, assert_error
from .stubs import sqlite_store

TOKEN_HEADERS = ["3rd-session", "3rd_session", "X-WX-Skey", "3RD-SESSION", "x_wx_skey"]


def test_protected_path_needs_a_session(app: Driver) -> None:
    reply = app.get("/api/me")
    assert_error(reply, 401, "invalid_session")
    assert "3rd-session" in reply.json()["message"]
    assert reply.headers["www-authenticate"].startswith("WxSession")
    assert app.inner.requests == []


@pytest.mark.parametrize("header", TOKEN_HEADERS)
def test_token_headers(app: Driver, fake_wechat: FakeWeChat, header: str) -> None:
    token = app.login(fake_wechat)
    reply = app.me(token, header)
    assert reply.status == 200 and reply.seen is not None
    assert reply.seen.openid == fake_wechat.openid_for("alice")
    assert reply.seen.unionid == fake_wechat.unionid_for("alice")
    assert reply.seen.session_key_matches is True
    # REMOTE_USER (WSGI) or an authenticated scope["user"] (ASGI)
    assert reply.seen.user == reply.seen.openid


def test_conflicting_headers_are_400(app: Driver, fake_wechat: FakeWeChat) -> None:
    token = app.login(fake_wechat)
    reply = app.get("/api/me", headers=[("3rd-session", token), ("X-WX-Skey", "B" * 43)])
    assert_error(reply, 400, "bad_request")
    agreeing = app.get("/api/me", headers=[("3rd-session", token), ("X-WX-Skey", token)])
    assert agreeing.status == 200


@pytest.mark.parametrize("value", ["", "A" * 43, "short", "has space", "x" * 500, "tök".encode()])
def test_unknown_or_malformed_tokens_are_401(app: Driver, value: Union[str, bytes]) -> None:
    reply = app.get("/api/me", headers=[("3rd-session", value)])
    assert_error(reply, 401, "invalid_session")
    assert app.inner.requests == []


def test_truncated_token_is_401(app: Driver, fake_wechat: FakeWeChat) -> None:
    token = app.login(fake_wechat)
    assert_error(app.me(token[:-1]), 401, "invalid_session")


def test_logout_ends_one_session_only(app: Driver, fake_wechat: FakeWeChat) -> None:
    first, second = app.login(fake_wechat), app.login(fake_wechat)
    reply = app.post("/wx/logout", headers=[("3rd-session", first)])
    assert reply.status == 204 and reply.body == b""
    assert app.me(first).status == 401
    assert app.me(second).status == 200
    assert app.post("/wx/logout", headers=[("3rd-session", first)]).status == 204


def test_logout_errors(app: Driver) -> None:
    assert_error(app.post("/wx/logout"), 401, "invalid_session")
    reply = app.get("/wx/logout")
    assert_error(reply, 405, "method_not_allowed")
    assert reply.headers["allow"] == "POST"


def test_public_and_optional_paths(app: Driver, fake_wechat: FakeWeChat) -> None:
    health = app.get("/health").seen
    assert health is not None and health.session is None and health.user is None
    assert "wxmiddleware.session" not in health.request  # a public path is untouched
    feed = app.get("/feed").seen
    assert feed is not None and feed.session is None and feed.user is None
    feed = app.get("/feed", headers=[("3rd-session", "A" * 43)]).seen
    assert feed is not None and feed.session is None
    token = app.login(fake_wechat)
    feed = app.me(token, path="/feed").seen
    assert feed is not None and feed.openid == fake_wechat.openid_for("alice")
    assert app.get("/health/../api/me").status == 401
    assert app.get("/health%2F..%2Fapi").status == 401


@pytest.mark.parametrize("raw_path", ["/static/a%2Fb", "/static/a%2fb", "/static/a%5Cb"])
def test_encoded_separator_below_a_public_prefix_is_protected(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, raw_path: str
) -> None:
    # The decoded path is clean and below /static/; only the raw path shows the encoding.
    app = make_app(config=app_config(fake_wechat, public_paths=("/static/*",)))
    assert app.raw("GET", "/static/a/b").status == 200
    assert_error(app.raw("GET", raw_path), 401, "invalid_session")
    assert len(app.inner.requests) == 1


def test_sqlite_store(
    make_app: Callable[..., Driver], adapter: str, fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    store = sqlite_store(adapter, tmp_path / "sessions.sqlite3")
    app = make_app(store=store)
    token = app.login(fake_wechat)
    seen = app.me(token).seen
    assert seen is not None and seen.openid == fake_wechat.openid_for("alice")
    app.close_store(store)
