"""Every malformed request gets a 4xx JSON answer, never a 5xx, the app or an ERROR log
line: WSGI and ASGI."""

from __future__ import annotations

import logging

import pytest

from wxmiddleware.testing import FakeWeChat

from .cases import MALFORMED, Case
from .drivers import raw_client


@pytest.mark.parametrize("adapter", ["wsgi", "asgi"])
@pytest.mark.parametrize("case", MALFORMED, ids=[case.id for case in MALFORMED])
def test_malformed_request(
    case: Case, adapter: str, fake_wechat: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wxmiddleware")
    if adapter == "asgi":
        pytest.importorskip("httpx")
    send = raw_client(adapter, fake_wechat.appid, fake_wechat.secret, fake_wechat.url)
    answer = send(case.method, case.path, case.headers, case.body, case.chunked)
    assert answer.status == case.status, answer.body
    assert not answer.app_ran
    assert answer.headers["content-type"] == "application/json"
    if case.method == "HEAD":
        # The GET answer's headers, its length included, and no body (issue 17).
        assert answer.body == b"" and int(answer.headers["content-length"]) > 0
        return
    assert answer.json()["error"]
    assert answer.json().get("code") == (-1 if case.wafer else None)
    assert fake_wechat.jscode2session_calls == 0
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
