"""Every example under every server it supports, over a real socket: the compatibility matrix."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Dict, List

import pytest

from wxmiddleware.testing import FakeWeChat

from .compat import EXAMPLES, SERVERS, TABLE_END, TABLE_START, combinations, render_table
from .flow import Client, assert_json_error, run_flow
from .servers import ROOT, app_env, free_port, python_module, serve

SERVER_MODULES = {
    "gunicorn-sync": "gunicorn",
    "gunicorn-gthread": "gunicorn",
    "waitress": "waitress",
    "werkzeug": "werkzeug",
    "uvicorn": "uvicorn",
    "hypercorn": "hypercorn",
}
FRAMEWORK_MODULES = {
    "flask_app": "flask",
    "bottle_app": "bottle",
    "pyramid_app": "pyramid",
    "django_app": "django",
    "django_app:asgi": "django",
    "starlette_app": "starlette",
    "fastapi_app": "fastapi",
}


def command_for(server: str, target: str, port: int) -> List[str]:
    bind = f"127.0.0.1:{port}"
    if server == "gunicorn-sync":
        return [*python_module("gunicorn"), "-w", "2", "-b", bind, target]
    if server == "gunicorn-gthread":
        return [
            *python_module("gunicorn"),
            "-k",
            "gthread",
            "--threads",
            "4",
            "-w",
            "2",
            "-b",
            bind,
            target,
        ]
    if server == "waitress":
        return [*python_module("waitress"), f"--listen={bind}", target]
    if server == "werkzeug":
        return [*python_module("tests.e2e.run_werkzeug"), "127.0.0.1", str(port), target]
    if server == "uvicorn":
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
    return [*python_module("hypercorn"), "-w", "2", "-b", bind, target]


def require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed in this environment")


@pytest.mark.e2e
@pytest.mark.parametrize(("example", "server"), combinations(), ids=lambda value: str(value))
def test_example_under_server(
    example: str, server: str, fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    require(FRAMEWORK_MODULES[example])
    require(SERVER_MODULES[server])
    module, _, attribute = example.partition(":")
    if not (ROOT / "examples" / f"{module}.py").exists():
        pytest.skip(f"examples/{module}.py does not exist yet")
    target = f"examples.{module}:{attribute or EXAMPLES[example][2]}"
    env: Dict[str, str] = app_env(fake_wechat, tmp_path / "state")
    port = free_port()
    with serve(command_for(server, target, port), env, port, tmp_path) as running:
        client = Client(running.url)
        tokens = run_flow(client, fake_wechat, requests_per_token=5)["tokens"]
        live = tokens[1]
        assert client.me(live, header="3rd-session").status_code == 200
        underscore = client.me(live, header="3rd_session")
        if SERVERS[server].passes_underscore:
            assert underscore.status_code == 200, underscore.text
            assert underscore.json()["openid"] == fake_wechat.openid_for("alice")
        else:
            body = assert_json_error(underscore, 401)
            assert "'3rd-session'" in body["message"]


def test_docs_table_matches() -> None:
    page = (ROOT / "docs" / "header-caveat.md").read_text(encoding="utf-8")
    assert TABLE_START in page and TABLE_END in page, "the docs lost the compatibility table"
    block = page.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    assert block == render_table(), "regenerate it with: python -m tests.e2e.compat"
