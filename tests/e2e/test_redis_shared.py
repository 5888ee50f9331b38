"""A gunicorn Flask app and a uvicorn Starlette app sharing sessions through one Redis.

Both load ``WX_SESSION_STORE=redis://…`` from the environment, as a deployment would. They
accept each other's tokens and logouts; when Redis is killed under traffic both answer 503
JSON, and when it returns both log users in again without a restart.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

pytest.importorskip("redis")
pytest.importorskip("gunicorn")

import requests

from tests.redis_support import SHARED_URL, private_redis, shared_client
from wxmiddleware.testing import FakeWeChat

from .flow import Client, assert_json_error
from .servers import ROOT, RunningServer, app_env, free_port, python_module, serve

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


@pytest.fixture
def wx_env(fake_wechat: FakeWeChat, tmp_path: Path) -> Dict[str, str]:
    return app_env(fake_wechat)


def starlette_missing() -> str:
    """Why the Starlette app cannot run here, or ``""`` when it can."""
    if not (ROOT / "examples" / "starlette_app.py").exists():
        return "examples/starlette_app.py (the ASGI example) does not exist yet"
    for module in ("starlette", "uvicorn", "httpx"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed in this environment"
    return ""


def require_flask() -> None:
    if importlib.util.find_spec("flask") is None:
        pytest.skip("flask is not installed in this environment")


@contextmanager
def flask_app(env: Dict[str, str], workdir: Path) -> Iterator[RunningServer]:
    """``examples.flask_app:app`` under ``gunicorn -w 2``."""
    port = free_port()
    workdir.mkdir()
    command = [*python_module("gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}"]
    with serve([*command, "examples.flask_app:app"], env, port, workdir) as server:
        yield server


@contextmanager
def starlette_app(env: Dict[str, str], workdir: Path) -> Iterator[RunningServer]:
    """``examples.starlette_app:app`` under ``uvicorn --workers 2``."""
    port = free_port()
    workdir.mkdir()
    command = [
        *python_module("uvicorn"),
        "--workers",
        "2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "examples.starlette_app:app",
    ]
    with serve(command, env, port, workdir) as server:
        yield server


def login(client: Client, code: str) -> str:
    response = client.login(code)
    assert response.status_code == 200, response.text
    token: str = response.json()["3rd_session"]
    return token


def test_flask_and_starlette_share_sessions(
    fake_wechat: FakeWeChat, wx_env: Dict[str, str], tmp_path: Path
) -> None:
    require_flask()
    missing = starlette_missing()
    if missing:
        pytest.skip(missing)
    shared = shared_client()
    env = {**wx_env, "WX_SESSION_STORE": SHARED_URL}
    openid = fake_wechat.openid_for("alice")
    tokens: List[str] = []
    codes: List[str] = []
    with flask_app(env, tmp_path / "flask") as wsgi, starlette_app(env, tmp_path / "asgi") as asgi:
        clients = (Client(wsgi.url), Client(asgi.url))
        for first, second in (clients, clients[::-1]):
            code = fake_wechat.issue_code("alice")
            codes.append(code)
            token = login(first, code)
            tokens.append(token)
            for client in (first, second):
                answer = client.me(token)
                assert answer.status_code == 200, answer.text
                assert answer.json()["openid"] == openid

            # A retry of the code through the other app: the same session, one WeChat call.
            calls = fake_wechat.jscode2session_calls
            assert login(second, code) == token
            assert fake_wechat.jscode2session_calls == calls

            # Logout on one app ends the session on the other.
            logout = second.call("POST", "/wx/logout", headers={"3rd-session": token})
            assert logout.status_code == 204
            assert_json_error(first.me(token), 401)
            assert_json_error(second.me(token), 401)

        # What both apps wrote holds no token and no code in clear.
        blob = b"\n".join(
            key + b" " + (shared.dump(key) or b"") for key in shared.scan_iter(count=500)
        )
        for secret in tokens + codes:
            assert secret.encode() not in blob
        answers = clients[0].answers + clients[1].answers
        logs = wsgi.log() + asgi.log()
    shared.close()
    assert "Traceback" not in logs
    assert all("session_key" not in answer for answer in answers)


class Traffic:
    """Threads that keep calling ``/api/me`` on each app, recording (app, status, error, s)."""

    def __init__(self, targets: List[Tuple[str, str]]) -> None:
        self.answers: List[Tuple[str, int, str, float]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=target) for target in targets * 2]

    def _run(self, url: str, token: str) -> None:
        http = requests.Session()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                response = http.get(url + "/api/me", headers={"3rd-session": token}, timeout=10)
            except requests.RequestException as exc:  # recorded, and fails the test
                self.answers.append((url, 0, type(exc).__name__, time.monotonic() - started))
                continue
            error = "" if response.status_code == 200 else response.json().get("error", "")
            self.answers.append((url, response.status_code, error, time.monotonic() - started))

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def timed(call: Callable[[str], requests.Response], argument: str) -> Tuple[Any, float]:
    started = time.monotonic()
    response = call(argument)
    return response, time.monotonic() - started


def test_redis_killed_under_traffic_then_back(
    fake_wechat: FakeWeChat, wx_env: Dict[str, str], tmp_path: Path
) -> None:
    require_flask()
    missing = starlette_missing()
    with private_redis(tmp_path) as redis_server, ExitStack() as stack:
        env = {**wx_env, "WX_SESSION_STORE": redis_server.url()}
        servers = [stack.enter_context(flask_app(env, tmp_path / "flask"))]
        if not missing:
            servers.append(stack.enter_context(starlette_app(env, tmp_path / "asgi")))
        clients = [Client(server.url) for server in servers]
        tokens = [login(client, fake_wechat.issue_code("alice")) for client in clients]
        for client in clients:  # each app reads the others' sessions
            assert all(client.me(token).status_code == 200 for token in tokens)

        targets = [(client.url, token) for client, token in zip(clients, tokens)]
        with Traffic(targets) as traffic:
            time.sleep(0.5)
            redis_server.kill()
            killed_at = len(traffic.answers)
            time.sleep(2)
        during = traffic.answers[killed_at + 2 * len(targets) :]
        assert {status for _, status, _, _ in traffic.answers} <= {200, 503}, traffic.answers
        for client in clients:
            mine = [answer for answer in during if answer[0] == client.url]
            assert mine and {(s, e) for _, s, e, _ in mine} == {(503, "store_unavailable")}

        slowest = 0.0
        for client, token in zip(clients, tokens):
            for response, seconds in (
                timed(client.me, token),
                timed(client.login, fake_wechat.issue_code()),
            ):
                assert_json_error(response, 503)
                assert response.json()["error"] == "store_unavailable"
                slowest = max(slowest, seconds)
        print(f"\nRedis killed: 503 JSON within {slowest * 1000:.0f} ms on {len(clients)} app(s)")
        assert slowest < 5

        redis_server.start()  # the same port, empty
        fresh = [login(client, fake_wechat.issue_code("alice")) for client in clients]
        for client in clients:
            assert all(client.me(token).status_code == 200 for token in fresh)
            assert_json_error(client.me(tokens[0]), 401)  # the old sessions died with Redis

        for server in servers:
            assert server.process.poll() is None
            assert "Traceback" not in server.log()
            assert "Worker exiting" not in server.log()
    if missing:
        pytest.skip(f"ran with the Flask app only: {missing}")
