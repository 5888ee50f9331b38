"""pytest fixtures for apps that use wxmiddleware, registered by the ``pytest11`` entry point.

- ``fake_wechat``: a started :class:`wxmiddleware.testing.FakeWeChat`, stopped after the test.
- ``fake_wechat_env``: the same fake, with ``WX_APPID``, ``WX_SECRET`` and ``WX_API_BASE`` set to
  its values, so ``WxConfig.from_env()`` talks to it.

pytest loads this module for every test run in an environment where wxmiddleware is installed,
so the server module is imported only when a test asks for a fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    from wxmiddleware.testing import FakeWeChat

__all__ = ["fake_wechat", "fake_wechat_env"]


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
