"""The soak's short form: a second process drives the gunicorn Flask example on SQLite and the
uvicorn Starlette example on Redis. ``WX_TEST_SOAK_SECONDS`` sets the length (long form: 60+).
The ``-1m`` form runs the SQLite one on a store that already holds ``WX_TEST_SOAK_PREFILL``
sessions (default 1,000,000, 15 % of them expired), so that its logins meet the expiry
maintenance of a large store: the SQLite forms set ``WX_SQLITE_PURGE_DELAY`` to
:data:`PURGE_DELAY` seconds (not the default 60), so each worker's maintenance thread starts
deleting expired rows, in batches, a second after its first login, and the ``-1m`` form checks
that it deleted some while the users came and went."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from wxmiddleware import WxConfig
from wxmiddleware.session import SessionScope, WxSession, new_token
from wxmiddleware.stores.sqlite import SQLiteStore
from wxmiddleware.testing import FakeWeChat
from wxmiddleware.testing.bulk import fill_sqlite_store

from ..e2e.servers import ROOT, app_env, free_port, python_module, serve

SOAK_SECONDS = os.environ.get("WX_TEST_SOAK_SECONDS", "8")
PREFILL = int(os.environ.get("WX_TEST_SOAK_PREFILL", "1000000"))
#: Seconds from a worker's first write to its first purge step, well within the soak.
PURGE_DELAY = "1"


def store_path(fake: FakeWeChat, state: Path) -> Path:
    """The example's default SQLite store under ``state`` (``XDG_STATE_HOME``)."""
    return state / "wxmiddleware" / f"sessions-{fake.appid}.sqlite3"


def expired_sessions(path: Path) -> int:
    with sqlite3.connect(path) as db:
        found = db.execute("SELECT count(*) FROM wx_sessions WHERE idle_until <= ?", (time.time(),))
        return int(found.fetchone()[0])


def prefill(fake: FakeWeChat, state: Path, total: int) -> None:
    """The example's default SQLite store under ``state``, holding ``total`` sessions."""
    config = WxConfig(appid=fake.appid, secret=fake.secret, api_base=fake.url)
    path = store_path(fake, state)
    store = SQLiteStore(path)
    session = WxSession(
        openid="o-prefill", session_key="k" * 24, unionid=None, created_at=time.time(),
        expires_at=time.time() + 86400, appid=fake.appid,
    )  # fmt: skip
    store.save(new_token(), session, 7200, SessionScope.for_config(config))
    store.close()
    fill_sqlite_store(path, total)


def server_command(setup: str, port: int) -> List[str]:
    if setup.startswith("gunicorn-flask-sqlite"):
        return [
            *python_module("gunicorn"),
            *("-k", "gthread", "--threads", "8", "-w", "2", "-b", f"127.0.0.1:{port}"),
            "examples.flask_app:app",
        ]
    return [
        *python_module("uvicorn"),
        *("--workers", "2", "--host", "127.0.0.1", "--port", str(port)),
        "examples.starlette_app:app",
    ]


@pytest.mark.e2e
@pytest.mark.parametrize(
    "setup", ["gunicorn-flask-sqlite", "gunicorn-flask-sqlite-1m", "uvicorn-starlette-redis"]
)
def test_soak(setup: str, fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    if setup.startswith("gunicorn-flask-sqlite"):
        pytest.importorskip("gunicorn")
        pytest.importorskip("flask")
        env = app_env(fake_wechat, tmp_path / "state", WX_SQLITE_PURGE_DELAY=PURGE_DELAY)
        if setup.endswith("-1m"):
            prefill(fake_wechat, tmp_path / "state", PREFILL)
            expired_before = expired_sessions(store_path(fake_wechat, tmp_path / "state"))
    else:
        pytest.importorskip("uvicorn")
        pytest.importorskip("starlette")
        from ..redis_support import SHARED_URL, shared_client

        shared_client().close()
        env = app_env(fake_wechat, WX_SESSION_STORE=SHARED_URL)
    port = free_port()
    with serve(server_command(setup, port), env, port, tmp_path) as server:
        driver = subprocess.run(
            [
                sys.executable,
                str(ROOT / "tests" / "soak" / "driver.py"),
                *("--app", server.url, "--wechat", fake_wechat.url),
                *("--users", "20", "--duration", SOAK_SECONDS),
            ],
            capture_output=True,
            text=True,
            timeout=float(SOAK_SECONDS) + 120,
        )
    assert driver.returncode in (0, 1), driver.stderr
    report = json.loads(driver.stdout)
    print(setup, json.dumps(report))
    assert report["requests"] > 100
    assert report["errors"] == 0, report
    assert report["cross_user_answers"] == 0, report
    assert report["distinct_openids"] == 20
    if setup.endswith("-1m"):
        # The workers' maintenance ran during the soak, beside the logins.
        assert expired_sessions(store_path(fake_wechat, tmp_path / "state")) < expired_before
