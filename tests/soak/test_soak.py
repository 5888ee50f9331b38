"""The soak's short form: a second process drives the gunicorn Flask example on SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wxmiddleware.testing import FakeWeChat

from ..e2e.servers import ROOT, app_env, free_port, python_module, serve

SOAK_SECONDS = os.environ.get("WX_TEST_SOAK_SECONDS", "8")


@pytest.mark.e2e
def test_soak_gunicorn_flask_sqlite(fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    pytest.importorskip("flask")
    env = app_env(fake_wechat, tmp_path / "state")
    port = free_port()
    command = [
        *python_module("gunicorn"),
        "-k",
        "gthread",
        "--threads",
        "8",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "examples.flask_app:app",
    ]
    with serve(command, env, port, tmp_path) as server:
        driver = subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "soak.py"),
                "--app",
                server.url,
                "--wechat",
                fake_wechat.url,
                "--users",
                "20",
                "--duration",
                SOAK_SECONDS,
            ],
            capture_output=True,
            text=True,
            timeout=float(SOAK_SECONDS) + 120,
        )
    assert driver.returncode in (0, 1), driver.stderr
    report = json.loads(driver.stdout)
    print(report)
    assert report["requests"] > 100
    assert report["errors"] == 0, report
    assert report["cross_user_answers"] == 0, report
    assert report["distinct_openids"] == 20
