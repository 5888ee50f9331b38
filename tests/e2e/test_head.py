"""HEAD then GET, pipelined on one kept-alive connection, under real servers (issue 17).

A ``HEAD`` answer that carries a body puts those bytes where the next answer on the
connection should start. Four requests go out in one write; h11 (a strict HTTP/1.1 parser
that knows a ``HEAD`` answer ends with its headers) reads the four answers back, and any
stray body bytes break the parse of the answer after them.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from wxmiddleware.testing import FakeWeChat

from .servers import app_env, free_port, python_module, serve

h11 = pytest.importorskip("h11")

#: (method, path): the middleware's 401 to HEAD and to GET, its 405 to HEAD, then the app.
REQUESTS = [("HEAD", "/api/me"), ("GET", "/api/me"), ("HEAD", "/wx/login"), ("GET", "/health")]

SERVERS = {
    # gunicorn's sync workers close every connection; gthread keeps it alive.
    "gunicorn": lambda port: [
        *python_module("gunicorn"),
        "-k",
        "gthread",
        "--threads",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "examples.flask_app:app",
    ],
    "waitress": lambda port: [
        *python_module("waitress"),
        f"--listen=127.0.0.1:{port}",
        "examples.flask_app:app",
    ],
    "uvicorn": lambda port: [
        *python_module("uvicorn"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "examples.starlette_app:app",
    ],
}

Answer = Tuple[int, Dict[str, str], bytes]


def _request(method: str, path: str) -> Any:
    return h11.Request(method=method, target=path, headers=[("Host", "127.0.0.1")])


def pipelined(port: int) -> List[Answer]:
    """Send :data:`REQUESTS` in one write on one connection; parse the answers in order."""
    payload = b""
    for method, path in REQUESTS:
        # A fresh client per request: h11 sends one request per cycle, we want them all now.
        writer = h11.Connection(h11.CLIENT)
        payload += writer.send(_request(method, path)) + writer.send(h11.EndOfMessage())
    reader = h11.Connection(h11.CLIENT)
    answers: List[Answer] = []
    deadline = time.monotonic() + 15
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(payload)
        for method, path in REQUESTS:
            # The reader must know each request to know whether its answer has a body.
            reader.send(_request(method, path))
            reader.send(h11.EndOfMessage())
            status, headers, body = 0, {}, b""
            while True:
                event = reader.next_event()
                if event is h11.NEED_DATA:
                    assert time.monotonic() < deadline, f"no answer to {method} {path}"
                    reader.receive_data(sock.recv(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    raise AssertionError(f"unexpected {event!r} for {method} {path}")
            answers.append((status, headers, body))
            reader.start_next_cycle()
    return answers


@pytest.mark.e2e
@pytest.mark.parametrize("server", sorted(SERVERS))
def test_head_then_get_on_one_connection(
    server: str, fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    pytest.importorskip(server)
    port = free_port()
    env = app_env(fake_wechat, tmp_path / "state")
    with serve(SERVERS[server](port), env, port, tmp_path) as running:
        (head_me, get_me, head_login, health) = pipelined(port)
        assert head_me[0] == get_me[0] == 401, running.log()
        assert head_me[2] == b""
        assert int(head_me[1]["content-length"]) == len(get_me[2])
        assert head_me[1]["www-authenticate"] == get_me[1]["www-authenticate"]
        assert b'"invalid_session"' in get_me[2]
        assert head_login[0] == 405 and head_login[2] == b""
        assert head_login[1]["allow"] == "POST"
        assert int(head_login[1]["content-length"]) > 0
        assert health[0] == 200 and b'"ok"' in health[2]
