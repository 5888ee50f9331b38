"""Every malformed request gets a 4xx JSON answer from WxASGIMiddleware, as from WxMiddleware."""

from __future__ import annotations

import pytest

from wxmiddleware import AsyncMemoryStore, WxASGIMiddleware, WxConfig
from wxmiddleware.testing import FakeWeChat

from .cases import MALFORMED, Case
from .drivers import RecordingASGIApp, asgi_request

pytest.importorskip("httpx")


@pytest.mark.parametrize("case", MALFORMED, ids=[case.id for case in MALFORMED])
def test_malformed_request(case: Case, fake_wechat: FakeWeChat) -> None:
    config = WxConfig(
        appid=fake_wechat.appid,
        secret=fake_wechat.secret,
        api_base=fake_wechat.url,
        public_paths=("/health",),
    )
    recorder = RecordingASGIApp()
    middleware = WxASGIMiddleware(recorder, config=config, store=AsyncMemoryStore())
    answer = asgi_request(
        middleware, recorder, case.method, case.path, case.headers, case.body, case.chunked
    )
    assert answer.status == case.status, answer.body
    assert not answer.app_ran
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]
    assert answer.json().get("code") == (-1 if case.wafer else None)
    assert fake_wechat.jscode2session_calls == 0
