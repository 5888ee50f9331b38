"""nginx in front of gunicorn: its default drops ``3rd_session``; the docs' snippet fixes it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator

import pytest
import requests

from wxmiddleware.testing import FakeWeChat

from .flow import Client, assert_json_error
from .servers import app_env, free_port, python_module, serve

#: The snippet the docs show (inside the ``server`` block), tested here verbatim.
UNDERSCORE_SNIPPET = """
    underscores_in_headers on;
    location / {
        # Forward the token as 3rd-session, which every WSGI server passes on.
        proxy_set_header 3rd-session $http_3rd_session;
        proxy_pass http://app;
    }
"""
DEFAULT_LOCATION = """
    location / {
        proxy_pass http://app;
    }
"""


def nginx_binary() -> str:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing; .ci/run installs it from apt")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    return binary


@contextmanager
def nginx(workdir: Path, backend_port: int, server_block: str) -> Iterator[str]:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "nginx.conf"
    config.write_text(
        f"""
daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    upstream app {{ server 127.0.0.1:{backend_port}; }}
    server {{
        listen 127.0.0.1:{port};
        {server_block}
    }}
}}
"""
    )
    process = subprocess.Popen(
        [nginx_binary(), "-c", str(config), "-p", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(url + "/health", timeout=2)
                break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (
                        (workdir / "error.log").read_text()
                        if (workdir / "error.log").exists()
                        else ""
                    )
                    raise RuntimeError(f"nginx did not start: {log}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.e2e
def test_nginx_default_and_snippet(fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    nginx_binary()
    pytest.importorskip("gunicorn")
    pytest.importorskip("flask")
    env: Dict[str, str] = app_env(fake_wechat, tmp_path / "state")
    backend = free_port()
    command = [
        *python_module("gunicorn"),
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{backend}",
        "examples.flask_app:app",
    ]
    with serve(command, env, backend, tmp_path):
        with nginx(tmp_path / "default", backend, DEFAULT_LOCATION) as url:
            client = Client(url)
            token = client.login(fake_wechat.issue_code("alice")).json()["3rd_session"]
            assert client.me(token, header="3rd-session").status_code == 200
            dropped = assert_json_error(client.me(token, header="3rd_session"), 401)
            assert "'3rd-session'" in dropped["message"]
        with nginx(tmp_path / "snippet", backend, UNDERSCORE_SNIPPET) as url:
            client = Client(url)
            openid = fake_wechat.openid_for("alice")
            for header in ("3rd-session", "3rd_session"):
                me = client.me(token, header=header)
                assert me.status_code == 200, me.text
                assert me.json()["openid"] == openid
            assert_json_error(client.call("GET", "/api/me"), 401)
