"""pytest fixtures for apps that use wxmiddleware, registered by the ``pytest11`` entry point.

- ``fake_wechat``: a started :class:`wxmiddleware.testing.FakeWeChat`, stopped after the test.
- ``fake_wechat_env``: the same fake, with ``WX_APPID``, ``WX_SECRET`` and ``WX_API_BASE`` set to
  its values, so ``WxConfig.from_env()`` talks to it.
- ``wx_login``: ``wx_login(client, user="alice") -> token`` logs a test user in through your
  app (WebTest, Flask's test client, httpx, Starlette's TestClient) against ``fake_wechat``.

pytest loads this module for every test run in an environment where wxmiddleware is installed,
so ``wxmiddleware.testing`` (the fake WeChat) is imported only when a test asks for a fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest

if TYPE_CHECKING:
    from wxmiddleware.testing import FakeWeChat

__all__ = ["fake_wechat", "fake_wechat_env", "wx_login"]


@pytest.fixture
def fake_wechat() -> Iterator[FakeWeChat]:
    """A fake WeChat API server on loopback for this test (see ``wxmiddleware.testing``)."""
    from wxmiddleware.testing import FakeWeChat

    with FakeWeChat() as fake:
        yield fake


@pytest.fixture
def fake_wechat_env(fake_wechat: FakeWeChat, monkeypatch: pytest.MonkeyPatch) -> FakeWeChat:
    """``fake_wechat``, with ``WX_APPID``, ``WX_SECRET`` and ``WX_API_BASE`` pointing at it."""
    monkeypatch.setenv("WX_APPID", fake_wechat.appid)
    monkeypatch.setenv("WX_SECRET", fake_wechat.secret)
    monkeypatch.setenv("WX_API_BASE", fake_wechat.url)
    return fake_wechat


@pytest.fixture
def wx_login(fake_wechat: FakeWeChat) -> Callable[..., str]:
    """``wx_login(client, user="alice")``: log a test user in through your app; the token."""
    from wxmiddleware.testing import log_in

    def login(client: Any, user: str = "alice", path: str = "/wx/login") -> str:
        return log_in(client, fake_wechat, user, path)

    return login
