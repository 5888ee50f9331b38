"""Every malformed request gets a 4xx JSON answer from WxMiddleware, never a 5xx or the app."""

from __future__ import annotations

import pytest

from wxmiddleware import MemoryStore, WxConfig, WxMiddleware
from wxmiddleware.testing import FakeWeChat

from .cases import MALFORMED, Case
from .drivers import RecordingApp, wsgi_request


@pytest.fixture
def recorder() -> RecordingApp:
    return RecordingApp()


@pytest.fixture
def middleware(fake_wechat: FakeWeChat, recorder: RecordingApp) -> WxMiddleware:
    config = WxConfig(
        appid=fake_wechat.appid,
        secret=fake_wechat.secret,
        api_base=fake_wechat.url,
        public_paths=("/health",),
    )
    return WxMiddleware(recorder, config=config, store=MemoryStore())


@pytest.mark.parametrize("case", MALFORMED, ids=[case.id for case in MALFORMED])
def test_malformed_request(
    case: Case, middleware: WxMiddleware, recorder: RecordingApp, fake_wechat: FakeWeChat
) -> None:
    answer = wsgi_request(
        middleware, recorder, case.method, case.path, case.headers, case.body, case.chunked
    )
    assert answer.status == case.status, answer.body
    assert not answer.app_ran
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]
    assert answer.json().get("code") == (-1 if case.wafer else None)
    assert fake_wechat.jscode2session_calls == 0
