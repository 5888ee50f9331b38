"""What only WxMiddleware does: REMOTE_USER, the app's iterable passed through unchanged,
chunked bodies (``wsgi.input_terminated``), the raw URI. The behaviour both adapters share is
in ``tests/middleware/``."""

from __future__ import annotations

import io
import json
from typing import Any, Callable, Dict, Iterator, Tuple

import pytest

from wxmiddleware.testing import FakeWeChat

from .hardening.drivers import wsgi_environ
from .middleware.drivers import Driver, WsgiDriver, app_config, driver_factory
from .middleware.stubs import WSGI


@pytest.fixture
def make_app(fake_wechat: FakeWeChat) -> Iterator[Callable[..., Driver]]:
    with driver_factory(WSGI, fake_wechat) as make:
        yield make


@pytest.fixture
def app(make_app: Callable[..., Driver]) -> WsgiDriver:
    driver = make_app()
    assert isinstance(driver, WsgiDriver)
    return driver


def test_remote_user_is_the_openid(app: WsgiDriver, fake_wechat: FakeWeChat) -> None:
    token = app.login(fake_wechat)
    for path in ("/api/me", "/feed"):
        seen = app.me(token, path=path).seen
        assert seen is not None
        assert seen.request["REMOTE_USER"] == fake_wechat.openid_for("alice")
    anonymous = app.get("/feed").seen
    assert anonymous is not None and "REMOTE_USER" not in anonymous.request


def test_app_iterable_is_returned_unchanged(app: WsgiDriver, fake_wechat: FakeWeChat) -> None:
    token = app.login(fake_wechat)
    app.me(token)
    assert app.inner.last_body is not None and app.inner.last_body.closed


def post_chunked(app: WsgiDriver, body: bytes) -> Tuple[str, Dict[str, Any], io.BytesIO]:
    """POST a chunked body straight to the middleware (WebTest always sets a length)."""
    headers = [("Content-Type", "application/json")]
    environ = wsgi_environ("POST", "/wx/login", headers, body, chunked=True)
    assert environ["wsgi.input_terminated"] is True and "CONTENT_LENGTH" not in environ
    stream = environ["wsgi.input"]
    answer: Dict[str, Any] = {}

    def start_response(status: str, headers: Any) -> None:
        answer["status"] = status

    body_out = b"".join(app.middleware(environ, start_response))
    return answer["status"], json.loads(body_out), stream


def test_oversized_chunked_body_is_refused(app: WsgiDriver) -> None:
    status, body, stream = post_chunked(app, b'{"code": "' + b"x" * 100_000 + b'"}')
    assert status.startswith("400") and body["error"] == "bad_request"
    assert stream.tell() <= 4097


def test_chunked_body_within_limit(app: WsgiDriver, fake_wechat: FakeWeChat) -> None:
    body = json.dumps({"code": fake_wechat.issue_code()}).encode()
    status, answer, _ = post_chunked(app, body)
    assert status.startswith("200") and answer["3rd_session"]


@pytest.mark.parametrize("uri_key", ["RAW_URI", "REQUEST_URI"])
def test_encoded_slash_in_the_raw_uri_is_never_public(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, uri_key: str
) -> None:
    """PATH_INFO is decoded; the raw URI (gunicorn's RAW_URI, uWSGI's REQUEST_URI) is not."""
    app = make_app(config=app_config(fake_wechat, public_paths=("/static/*",)))
    assert isinstance(app, WsgiDriver)
    environ = wsgi_environ("GET", "/static/a%2Fb")
    assert environ["PATH_INFO"] == "/static/a/b"
    environ[uri_key] = environ.pop("RAW_URI")
    status: Dict[str, str] = {}

    def start_response(line: str, headers: Any) -> None:
        status["line"] = line

    body = b"".join(app.middleware(environ, start_response))
    assert status["line"].startswith("401") and json.loads(body)["error"] == "invalid_session"
    assert app.inner.requests == []
    assert app.get("/static/a/b").status == 200  # the same path, unencoded, is public


@pytest.mark.parametrize("store_given", [False, True])
def test_close_closes_what_the_middleware_opened(
    fake_wechat: FakeWeChat, monkeypatch: pytest.MonkeyPatch, store_given: bool
) -> None:
    from wxmiddleware import MemoryStore, WxMiddleware

    closed = []
    given = MemoryStore() if store_given else None
    config = app_config(fake_wechat).with_options(store="memory://")
    middleware = WxMiddleware(lambda environ, start_response: [], config=config, store=given)
    for name, opened in (("store", middleware.store), ("wechat", middleware.wechat)):
        monkeypatch.setattr(opened, "close", lambda name=name: closed.append(name))
    middleware.close()
    assert closed == (["wechat"] if store_given else ["store", "wechat"])
