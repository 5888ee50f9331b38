"""The framework integrations under real servers: the Django app's users under gunicorn
(WSGI) and uvicorn (ASGI), FastAPI's schema and dependencies under uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest
import requests

from wxmiddleware.testing import FakeWeChat

from .flow import assert_json_error
from .servers import app_env, free_port, python_module, serve

pytestmark = pytest.mark.e2e


def command(server: str, target: str, port: int) -> List[str]:
    if server == "gunicorn":
        return [*python_module("gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", target]
    return [
        *python_module("uvicorn"),
        "--workers",
        "2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        target,
    ]


@pytest.mark.parametrize(
    ("server", "target"),
    [("gunicorn", "examples.django_app:app"), ("uvicorn", "examples.django_app:asgi")],
)
def test_django_login_required_under_a_server(
    server: str, target: str, fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    pytest.importorskip("django")
    pytest.importorskip(server)
    port = free_port()
    env = app_env(fake_wechat, tmp_path / "state")
    with serve(command(server, target, port), env, port, tmp_path) as running:
        http = requests.Session()
        refused = assert_json_error(http.get(running.url + "/api/profile", timeout=15), 401)
        assert refused["error"] == "invalid_session"
        login = http.post(
            running.url + "/wx/login", json={"code": fake_wechat.issue_code("alice")}, timeout=15
        )
        token = login.json()["3rd_session"]
        openid = fake_wechat.openid_for("alice")
        # Many requests: both workers answer with the Django user of the openid (each
        # creates it in its own in-memory database when it first sees it).
        for _ in range(10):
            answer = requests.get(
                running.url + "/api/profile", headers={"3rd-session": token}, timeout=15
            )
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"username": f"wx_{openid}", "openid": openid}


def test_fastapi_security_under_uvicorn(fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    port = free_port()
    env = app_env(fake_wechat, tmp_path / "state", WX_OPTIONAL_PATHS="/feed")
    with serve(
        command("uvicorn", "examples.fastapi_app:app", port), env, port, tmp_path
    ) as running:
        schema = requests.get(running.url + "/openapi.json", timeout=15).json()
        assert schema["components"]["securitySchemes"]["wxSession"]["name"] == "3rd-session"
        assert "/wx/login" in schema["paths"]
        login = requests.post(
            running.url + "/wx/login", json={"code": fake_wechat.issue_code("bob")}, timeout=15
        )
        token = login.json()["3rd_session"]
        me = requests.get(running.url + "/api/me", headers={"3rd-session": token}, timeout=15)
        assert me.json()["openid"] == fake_wechat.openid_for("bob")
        assert requests.get(running.url + "/feed", timeout=15).json() == {"items": ["for everyone"]}
        assert_json_error(requests.get(running.url + "/api/me", timeout=15), 401)
