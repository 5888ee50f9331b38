"""The mini-program client (``clients/miniprogram``) under node, against the Flask example
served by ``gunicorn -w 2`` and the fake WeChat, all over real sockets
(``examples/miniprogram/test``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import pytest

from wxmiddleware.testing import FakeWeChat

from .servers import ROOT, app_env, free_port, python_module, serve

JS_TESTS = ROOT / "examples" / "miniprogram" / "test"


def require(ok: bool, reason: str) -> None:
    """Skip when a prerequisite is missing, but fail under CI, which must never skip this test."""
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
        pytest.skip(reason)


def installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@pytest.mark.e2e
def test_miniprogram_client_under_node(fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    node: Optional[str] = shutil.which("node")
    require(node is not None, "node is not installed: the mini-program client tests need it")
    assert node is not None
    require(installed("gunicorn"), "gunicorn is not installed")
    require(installed("flask"), "flask is not installed")

    env = app_env(fake_wechat, tmp_path / "state")
    port = free_port()
    command = [
        *python_module("gunicorn"),
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "--access-logfile",
        "-",
        "examples.flask_app:app",
    ]
    with serve(command, env, port, tmp_path) as server:
        node_env = {
            **os.environ,
            "WX_APP_URL": server.url,
            "FAKE_WECHAT_URL": fake_wechat.url,
            "WX_EXPECTED_OPENID": fake_wechat.openid_for("alice"),
        }
        result = subprocess.run(
            [node, "--test", "--test-reporter=tap", str(JS_TESTS)],
            cwd=ROOT,
            env=node_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        output = f"{result.stdout}\n{result.stderr}"
        print(output)  # shown with -rP or -s even when the test passes
        assert result.returncode == 0, (
            f"node --test failed ({result.returncode}):\n{output}\n"
            f"--- server log ---\n{server.log()}"
        )
    # Every test ran: none was skipped (for want of the URLs, say) and some passed.
    assert "# SKIP" not in result.stdout, output
    passed = re.search(r"^# pass (\d+)$", result.stdout, re.MULTILINE)
    assert passed and int(passed.group(1)) > 0, output
