"""What both adapters refuse when they are built: a store or WeChat client of the other kind,
and a Flask app passed itself rather than its ``wsgi_app``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from wxmiddleware import ConfigError, MemoryStore, SQLiteStore, WxConfig, WxMiddleware
from wxmiddleware.stores.aio import AsyncMemoryStore, AsyncSQLiteStore
from wxmiddleware.wechat import WeChatClient

CONFIG = WxConfig(appid="wx0123456789abcdef", secret="s3cret-value", store="memory://")


def wsgi_app(environ: Any, start_response: Any) -> Any:
    start_response("204 No Content", [])
    return []


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("never called")


def asgi_middleware() -> Callable[..., Any]:
    pytest.importorskip("httpx")
    from wxmiddleware import WxASGIMiddleware

    return WxASGIMiddleware


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_asgi_refuses_a_sync_store(kind: str, tmp_path: Path) -> None:
    store: Any = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "s.db")
    with pytest.raises(ConfigError) as caught:
        asgi_middleware()(asgi_app, config=CONFIG, store=store)
    message = str(caught.value)
    assert "WxASGIMiddleware needs an asynchronous store" in message
    assert type(store).__name__ in message
    assert "open_async_store" in message and "AsyncSQLiteStore" in message
    store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_wsgi_refuses_an_async_store(kind: str, tmp_path: Path) -> None:
    store: Any = AsyncMemoryStore() if kind == "memory" else AsyncSQLiteStore(tmp_path / "s.db")
    with pytest.raises(ConfigError) as caught:
        WxMiddleware(wsgi_app, config=CONFIG, store=store)
    message = str(caught.value)
    assert "WxMiddleware needs a synchronous store" in message
    assert type(store).__name__ in message and "open_store" in message
    store.sync.close()


def test_the_refusal_opens_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # The check runs before the default WeChat client (and store) would be opened.
    opened = []
    monkeypatch.setattr(WxMiddleware, "client_class", lambda config: opened.append(config))
    with pytest.raises(ConfigError):
        WxMiddleware(wsgi_app, config=CONFIG, store=AsyncMemoryStore())
    assert opened == []


def test_asgi_refuses_a_sync_wechat_client() -> None:
    middleware = asgi_middleware()
    client = WeChatClient(CONFIG)
    with pytest.raises(ConfigError) as caught:
        middleware(asgi_app, config=CONFIG, store=AsyncMemoryStore(), wechat=client)
    assert "AsyncWeChatClient" in str(caught.value) and "WeChatClient" in str(caught.value)
    client.close()


def test_wsgi_refuses_an_async_wechat_client() -> None:
    pytest.importorskip("httpx")
    from wxmiddleware.wechat.aio import AsyncWeChatClient

    with pytest.raises(ConfigError) as caught:
        WxMiddleware(wsgi_app, config=CONFIG, store=MemoryStore(), wechat=AsyncWeChatClient(CONFIG))
    assert "wxmiddleware.wechat.WeChatClient(config)" in str(caught.value)


def test_matching_kinds_are_accepted() -> None:
    sync = WxMiddleware(wsgi_app, config=CONFIG, store=MemoryStore(), wechat=WeChatClient(CONFIG))
    assert isinstance(sync.store, MemoryStore)
    middleware = asgi_middleware()
    from wxmiddleware.wechat.aio import AsyncWeChatClient

    aio = middleware(
        asgi_app, config=CONFIG, store=AsyncMemoryStore(), wechat=AsyncWeChatClient(CONFIG)
    )
    assert isinstance(aio.store, AsyncMemoryStore)


def test_a_flask_app_itself_is_refused() -> None:
    flask = pytest.importorskip("flask")
    app = flask.Flask(__name__)
    with pytest.raises(ConfigError, match=r"app\.wsgi_app = WxMiddleware\(app\.wsgi_app"):
        WxMiddleware(app, config=CONFIG)
    app.wsgi_app = WxMiddleware(app.wsgi_app, config=CONFIG)  # type: ignore[method-assign]
    assert app.test_client().get("/anything").status_code == 401
