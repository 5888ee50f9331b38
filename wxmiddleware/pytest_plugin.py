"""pytest fixtures for apps that use wxmiddleware, registered by the ``pytest11`` entry point.

- ``fake_wechat``: a started :class:`wxmiddleware.testing.FakeWeChat`, stopped after the test.
- ``fake_wechat_env``: the same fake, with ``WX_APPID``, ``WX_SECRET`` and ``WX_API_BASE`` set to
  its values and ``WX_SESSION_STORE`` to a SQLite file in the test's ``tmp_path``, so an app
  built from ``WxConfig.from_env()`` after the fixture ran talks to the fake and keeps its
  sessions in the test's own directory (never the default store under ``~/.local/state``).
  Every variable is restored after the test.
- ``wx_login``: ``wx_login(client, user="alice", path="/wx/login") -> token`` logs a test user
  in through your app (WebTest's ``TestApp``, Flask's test client, an ``httpx.Client``,
  Starlette's or FastAPI's ``TestClient``) against ``fake_wechat``; send the token back in
  the ``3rd-session`` header. ``fake_wechat.openid_for(user)`` is the openid the app sees.

The README's "Testing your app" and ``docs/testing.md`` show a complete test per framework.

pytest loads this module for every test run in an environment where wxmiddleware is installed,
so ``wxmiddleware.testing`` (the fake WeChat) is imported only when a test asks for a fixture.
"""

from __future__ import annotations

from pathlib import Path
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
def fake_wechat_env(
    fake_wechat: FakeWeChat, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> FakeWeChat:
    """``fake_wechat``, with ``WX_APPID``, ``WX_SECRET`` and ``WX_API_BASE`` pointing at it and
    ``WX_SESSION_STORE`` at ``sqlite:///<tmp_path>/wx-sessions.sqlite3``.

    The store is set too, so that a test never writes the default store of the fake's appid
    under ``~/.local/state``, nor a store ``WX_SESSION_STORE`` named in the developer's shell.
    """
    monkeypatch.setenv("WX_APPID", fake_wechat.appid)
    monkeypatch.setenv("WX_SECRET", fake_wechat.secret)
    monkeypatch.setenv("WX_API_BASE", fake_wechat.url)
    monkeypatch.setenv("WX_SESSION_STORE", f"sqlite:///{tmp_path / 'wx-sessions.sqlite3'}")
    return fake_wechat


@pytest.fixture
def wx_login(fake_wechat: FakeWeChat) -> Callable[..., str]:
    """``wx_login(client, user="alice", path="/wx/login")``: log a test user in through your
    app with a fresh code from ``fake_wechat``; returns the session token. Raises
    :class:`wxmiddleware.testing.LoginFailed` (an ``AssertionError``) when the app does not
    answer ``200`` with a token."""
    from wxmiddleware.testing import log_in

    def login(client: Any, user: str = "alice", path: str = "/wx/login") -> str:
        return log_in(client, fake_wechat, user, path)

    return login
