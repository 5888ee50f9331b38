"""500 concurrent logins on the default SQLite store, through many threads and many workers.

gunicorn with 4 gthread workers x 50 threads (the Flask example) and uvicorn with 2 workers
(the Starlette example) each take 500 logins in flight at once: 500 client threads each open
a connection, wait until all 500 are open, then send their login. Then one authenticated
request per token, again all 500 at once. Every answer must be a 200: SQLite's write lock is
shared by every thread of every worker, and no write may wait past the store's timeout.
"""

from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from wxmiddleware.testing import FakeWeChat

from .servers import app_env, free_port, python_module, serve

LOGINS = 500

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

#: One request: method, path, JSON body (or None), headers.
Request = Tuple[str, str, Optional[object], Dict[str, str]]


def all_at_once(port: int, requests: List[Request]) -> List[Tuple[int, str]]:
    """Send every request on a connection of its own, from a thread of its own, once every
    connection is open (a barrier), so all of them are in flight together; returns each
    answer's status and body, in order."""
    ready = threading.Barrier(len(requests))

    def send(request: Request) -> Tuple[int, str]:
        method, path, body, headers = request
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            try:
                conn.connect()
            except OSError:
                ready.abort()  # the others stop waiting for this one
                raise
            ready.wait(timeout=60)
            payload = None if body is None else json.dumps(body)
            if payload is not None:
                headers = {**headers, "Content-Type": "application/json"}
            conn.request(method, path, body=payload, headers=headers)
            answer = conn.getresponse()
            return answer.status, answer.read().decode()
        finally:
            conn.close()

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


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
        logins = all_at_once(port, [("POST", "/wx/login", {"code": code}, {}) for code in codes])
        statuses = sorted({status for status, _ in logins})
        failures = [body for status, body in logins if status != 200][:3]
        assert statuses == [200], f"{statuses}: {failures}\n{server.log()[-2000:]}"

        tokens = [json.loads(body)["3rd_session"] for _, body in logins]
        assert len(set(tokens)) == LOGINS

        calls = all_at_once(port, [("GET", "/api/me", None, {"3rd-session": t}) for t in tokens])
        assert {status for status, _ in calls} == {200}
        assert [json.loads(body)["openid"] for _, body in calls] == [
            fake_wechat.openid_for(f"crowd-{n}") for n in range(LOGINS)
        ]
