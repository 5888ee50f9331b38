"""Each WSGI example under ``gunicorn -w 2`` on the default SQLite store, over a socket."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict

import pytest

from wxmiddleware.testing import FakeWeChat

from .flow import (
    Client,
    assert_json_error,
    assert_no_leak,
    issued_session_keys,
    run_flow,
    store_bytes,
)
from .servers import app_env, free_port, python_module, serve

pytest.importorskip("gunicorn")

EXAMPLES = ["flask_app", "bottle_app", "pyramid_app"]


def framework_available(example: str) -> bool:
    module = {"flask_app": "flask", "bottle_app": "bottle", "pyramid_app": "pyramid"}[example]
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@pytest.fixture
def wx_env(fake_wechat: FakeWeChat, tmp_path: Path) -> Dict[str, str]:
    return app_env(fake_wechat, tmp_path / "state")


@pytest.mark.e2e
@pytest.mark.parametrize("example", EXAMPLES)
def test_example_under_gunicorn(
    example: str, fake_wechat: FakeWeChat, wx_env: Dict[str, str], tmp_path: Path
) -> None:
    if not framework_available(example):
        pytest.skip(f"the framework of {example} is not installed")
    port = free_port()
    command = [
        *python_module("gunicorn"),
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "--access-logfile",
        "-",
        "--access-logformat",
        "pid=%(p)s %(r)s %(s)s",
        f"examples.{example}:app",
    ]
    with serve(command, wx_env, port, tmp_path) as server:
        client = Client(server.url)
        result = run_flow(client, fake_wechat)

        # Many requests with one token land on both workers: the store is shared.
        token = result["tokens"][1]
        for _ in range(100):
            client.http = type(client.http)()  # a new connection each time
            assert client.me(token).status_code == 200
            pids = set(re.findall(r"pid=<(\d+)> GET /api/me", server.log()))
            if len(pids) >= 2:
                break
        assert len(pids) >= 2, "every request landed on one worker"

        # gunicorn drops the underscore form; the 401 says which header to send.
        dropped = assert_json_error(client.me(token, header="3rd_session"), 401)
        assert "3rd-session" in dropped["message"]

        session_keys = issued_session_keys(fake_wechat, tmp_path / "state")
        assert session_keys
        stored = store_bytes(tmp_path / "state")
        for stored_token in result["tokens"]:
            assert stored_token.encode() not in stored
        assert_no_leak(client.answers + server.log().splitlines(), fake_wechat, session_keys)
