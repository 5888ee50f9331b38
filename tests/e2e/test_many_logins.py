"""500 concurrent logins on the default SQLite store, through many threads and many workers.

gunicorn with 4 gthread workers x 50 threads (the Flask example) and uvicorn with 2 workers
(the Starlette example) each take 500 logins sent at once from 100 client threads, then one
authenticated request per token. Every answer must be a 200: SQLite's write lock is shared
by every thread of every worker, and no write may wait past the store's timeout.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List

import pytest
import requests

from wxmiddleware.testing import FakeWeChat

from .servers import app_env, free_port, python_module, serve

LOGINS = 500
CLIENT_THREADS = 100

SERVERS = {
    "gunicorn-gthread": lambda port: [
        *python_module("gunicorn"),
        "-w", "4", "--threads", "50", "-k", "gthread", "-b", f"127.0.0.1:{port}",
        "examples.flask_app:app",
    ],
    "uvicorn": lambda port: [
        *python_module("uvicorn"),
        "--workers", "2", "--port", str(port), "--log-level", "warning",
        "examples.starlette_app:app",
    ],
}  # fmt: skip


@pytest.mark.e2e
@pytest.mark.parametrize("server_name", sorted(SERVERS))
def test_500_concurrent_logins_answer_no_5xx(
    server_name: str, fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    pytest.importorskip("gunicorn" if server_name.startswith("gunicorn") else "uvicorn")
    port = free_port()
    env = app_env(fake_wechat, tmp_path / "state")
    codes = [fake_wechat.issue_code(f"crowd-{n}") for n in range(LOGINS)]
    with serve(SERVERS[server_name](port), env, port, tmp_path) as server:
        local = requests.Session
        sessions = [local() for _ in range(CLIENT_THREADS)]

        def login(n: int) -> requests.Response:
            http = sessions[n % CLIENT_THREADS]
            return http.post(f"{server.url}/wx/login", json={"code": codes[n]}, timeout=60)

        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            answers: List[requests.Response] = list(pool.map(login, range(LOGINS)))
        statuses = sorted({answer.status_code for answer in answers})
        failures = [a.text for a in answers if a.status_code != 200][:3]
        assert statuses == [200], f"{statuses}: {failures}\n{server.log()[-2000:]}"

        tokens = [answer.json()["3rd_session"] for answer in answers]
        assert len(set(tokens)) == LOGINS

        def me(n: int) -> int:
            http = sessions[n % CLIENT_THREADS]
            headers = {"3rd-session": tokens[n]}
            return http.get(f"{server.url}/api/me", headers=headers, timeout=60).status_code

        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            assert set(pool.map(me, range(LOGINS))) == {200}
        for http in sessions:
            http.close()
