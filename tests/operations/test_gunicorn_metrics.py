"""Metrics under a real 2-worker gunicorn (prometheus-client's multiprocess mode): whichever
worker answers /metrics, the counts are every worker's added up."""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from wxmiddleware.testing import FakeWeChat

from ..e2e.servers import app_env, free_port, serve

pytest.importorskip("prometheus_client")
pytest.importorskip("gunicorn")


def sample(text: str, name: str, labels: str) -> float:
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_two_workers_add_up(fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = app_env(
        fake_wechat,
        tmp_path,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        WX_SESSION_STORE=f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
    )
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "tests.operations.gunicorn_app:app",
    ]
    with serve(command, env, port, tmp_path) as server:
        with ThreadPoolExecutor(8) as pool:
            pids = set(pool.map(lambda _: requests.get(server.url + "/slow").text, range(16)))
            rejected = list(pool.map(lambda _: requests.get(server.url + "/api/me"), range(20)))
            codes = [fake_wechat.issue_code(f"user{n}") for n in range(6)]
            logins = list(
                pool.map(lambda c: requests.post(server.url + "/wx/login", json={"code": c}), codes)
            )
        assert len(pids) == 2, "both workers should have served"
        assert {reply.status_code for reply in rejected} == {401}
        assert {reply.status_code for reply in logins} == {200}
        for _ in range(4):  # whichever worker answers, it reports both workers' counts
            text = requests.get(server.url + "/metrics").text
            assert sample(text, "wxmiddleware_requests_total", 'outcome="public"') >= 16
            assert sample(text, "wxmiddleware_rejections_total", 'reason="missing"') == 20
            assert sample(text, "wxmiddleware_requests_total", 'outcome="rejected"') == 20
            logins_ok = sample(text, "wxmiddleware_logins_total", 'errcode="",outcome="success"')
            assert logins_ok == 6
            calls = sample(
                text,
                "wxmiddleware_wechat_request_duration_seconds_count",
                'api="/sns/jscode2session"',
            )
            assert calls == 6
