from typing import Iterator

import pytest
from django_app import create_wsgi_app
from webtest import TestApp


@pytest.fixture
def app(fake_wechat_env) -> Iterator[TestApp]:
    # fake_wechat_env has set WX_APPID, WX_SECRET, WX_API_BASE (the fake WeChat) and
    # WX_SESSION_STORE (a file in tmp_path): build the app now, not at import.
    # WebTest drives the wrapped handler; Django's own test Client would bypass the middleware.
    wsgi_app = create_wsgi_app()
    yield TestApp(wsgi_app)
    wsgi_app.close()


def test_me(app, wx_login, fake_wechat) -> None:
    token = wx_login(app, user="alice")
    reply = app.get("/api/me/", headers={"3rd-session": token})
    assert reply.json == {"openid": fake_wechat.openid_for("alice")}


def test_a_token_authenticated_post_needs_no_csrf_token(app, wx_login) -> None:
    token = wx_login(app, user="alice")
    reply = app.post_json("/api/notes/", {"note": "hi"}, headers={"3rd-session": token})
    assert reply.status_int == 201 and reply.json["note"] == "hi"


def test_me_needs_a_session(app) -> None:
    assert app.get("/api/me/", expect_errors=True).status_int == 401
    assert app.get("/health/").json == {"ok": True}
    # "/health" is not listed: the middleware answers before Django would redirect it.
    assert app.get("/health", expect_errors=True).status_int == 401
