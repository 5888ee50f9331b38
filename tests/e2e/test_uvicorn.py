"""Each ASGI example under ``uvicorn --workers 2`` on the default SQLite store, over a socket."""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

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
from .servers import RunningServer, app_env, free_port, python_module, serve

pytest.importorskip("uvicorn")
websockets_client = pytest.importorskip("websockets.sync.client")
httpx = pytest.importorskip("httpx")

from websockets.exceptions import InvalidStatus  # noqa: E402

pytestmark = pytest.mark.e2e

EXAMPLES = {"starlette_app": "starlette", "fastapi_app": "fastapi"}

# The worker's pid on every access line (to see both workers serve), and the middleware's
# and aiohttp's own records down to DEBUG (to see that none of them leaks a secret).
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "pid=%(process)d %(name)s %(levelname)s %(message)s"}},
    "handlers": {
        "out": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stdout",
        }
    },
    "loggers": {
        "uvicorn": {"handlers": ["out"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": ["out"], "level": "INFO", "propagate": False},
        "wxmiddleware": {"handlers": ["out"], "level": "DEBUG", "propagate": False},
        "aiohttp": {"handlers": ["out"], "level": "DEBUG", "propagate": False},
    },
}


@pytest.fixture(params=sorted(EXAMPLES))
def example(request: pytest.FixtureRequest) -> str:
    pytest.importorskip(EXAMPLES[request.param])
    return str(request.param)


def env_for(fake: FakeWeChat, tmp_path: Path, read_timeout: float) -> Dict[str, str]:
    return app_env(fake, tmp_path / "state", WX_READ_TIMEOUT=str(read_timeout))


@contextmanager
def uvicorn(
    example: str, fake: FakeWeChat, tmp_path: Path, read_timeout: float = 1
) -> Iterator[RunningServer]:
    port = free_port()
    log_config = tmp_path / "logging.json"
    log_config.write_text(json.dumps(LOG_CONFIG))
    command = [
        *python_module("uvicorn"),
        "--workers",
        "2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-config",
        str(log_config),
        f"examples.{example}:app",
    ]
    with serve(command, env_for(fake, tmp_path, read_timeout), port, tmp_path) as server:
        yield server


def websocket_url(server: RunningServer) -> str:
    return server.url.replace("http://", "ws://", 1) + "/ws"


def test_example_under_uvicorn(example: str, fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    with uvicorn(example, fake_wechat, tmp_path) as server:
        client = Client(server.url)
        result = run_flow(client, fake_wechat)
        token = result["tokens"][1]

        # uvicorn passes the underscore form: both reach the middleware.
        for header in ("3rd-session", "3rd_session"):
            answer = client.me(token, header=header)
            assert answer.status_code == 200, answer.text
            assert answer.json()["openid"] == fake_wechat.openid_for("alice")

        # Many requests with one token land on both workers: the store is shared.
        pids: set = set()
        for _ in range(100):
            client.http = type(client.http)()  # a new connection each time
            assert client.me(token).status_code == 200
            pids = set(re.findall(r"pid=(\d+) uvicorn.access .*\"GET /api/me", server.log()))
            if len(pids) >= 2:
                break
        assert len(pids) >= 2, "every request landed on one worker"

        # Without a session the handshake is refused before the app accepts anything.
        for headers in ({}, {"3rd-session": "A" * 43}):
            with pytest.raises(InvalidStatus) as refused:
                websockets_client.connect(websocket_url(server), additional_headers=headers)
            assert refused.value.response.status_code == 403
        for header in ("3rd-session", "3rd_session"):
            with websockets_client.connect(
                websocket_url(server), additional_headers={header: token}
            ) as websocket:
                websocket.send("ping")
                assert websocket.recv(timeout=10) == "ping"

        # The client's own record of each call, without the query.
        assert "WeChat GET /sns/jscode2session: HTTP 200" in server.log()
        session_keys = issued_session_keys(fake_wechat, tmp_path / "state")
        assert session_keys
        for stored_token in result["tokens"]:
            assert stored_token.encode() not in store_bytes(tmp_path / "state")
        assert_no_leak(client.answers + server.log().splitlines(), fake_wechat, session_keys)
        assert token not in server.log()


def test_health_answers_while_a_hundred_logins_wait(
    fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    pytest.importorskip("starlette")
    with uvicorn("starlette_app", fake_wechat, tmp_path, read_timeout=10) as server:
        fake_wechat.latency = 1.0
        health, waiting, answered = asyncio.run(health_during_logins(server.url, fake_wechat, 100))
        assert health == 200
        # Judged by what was still waiting, not by the clock: on a loaded machine some logins
        # may finish first, but a loop held up by them would answer health only after all.
        assert waiting > 0, "health was answered only after every login"
        assert answered == ["login 200"] * 100


async def health_during_logins(
    url: str, fake: FakeWeChat, logins: int
) -> Tuple[int, int, List[str]]:
    """Health's status, how many logins were still waiting when it came, the logins'."""
    answered: List[str] = []
    limits = httpx.Limits(max_connections=logins + 1)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def log_in(user: str) -> None:
            response = await client.post("/wx/login", json={"code": fake.issue_code(user)})
            answered.append(f"login {response.status_code}")

        tasks = [asyncio.ensure_future(log_in(f"user-{n}")) for n in range(logins)]
        while fake.jscode2session_calls < logins:  # until every login waits on WeChat
            assert not any(task.done() for task in tasks), "a login ended early"
            await asyncio.sleep(0.01)
        health = await client.get("/health")
        waiting = sum(not task.done() for task in tasks)
        await asyncio.gather(*tasks)
    return health.status_code, waiting, answered


def test_two_logins_with_one_code_make_one_upstream_call(
    fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    pytest.importorskip("starlette")
    with uvicorn("starlette_app", fake_wechat, tmp_path) as server:
        fake_wechat.latency = 0.3
        code = fake_wechat.issue_code()

        async def both() -> List[str]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                answers = await asyncio.gather(
                    *(client.post("/wx/login", json={"code": code}) for _ in range(2))
                )
            assert all(answer.status_code == 200 for answer in answers)
            return [answer.json()["3rd_session"] for answer in answers]

        first, second = asyncio.run(both())
        assert first == second
        assert fake_wechat.jscode2session_calls == 1
        assert_json_error(Client(server.url).me("A" * 43), 401)
