"""ExclusiveConnectionTransport against a real HTTP/1.1 server on loopback.

The server records which client port (which TCP connection) carried each request, how many
requests it was handling at once, and can hold answers until the test lets them go, so
reuse and concurrency are asserted by what the server saw, never by timing.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, List

import httpx
import pytest

from tests.tls_support import write_tls_files
from wxmiddleware import WxConfig
from wxmiddleware.errors import UpstreamUnreachable
from wxmiddleware.wechat._exclusive import ExclusiveConnectionTransport
from wxmiddleware.wechat.aio import AsyncWeChatClient

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.ports: List[int] = []
        self.bodies: List[bytes] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.release.set()
        self.arrived = threading.Semaphore(0)
        self.close_after_answer = False

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}/path"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _answer(self) -> None:
        server = self.server
        length = int(self.headers.get("Content-Length") or 0)
        with server.lock:
            server.ports.append(self.client_address[1])
            server.bodies.append(self.rfile.read(length))
            server.in_flight += 1
            server.most_in_flight = max(server.most_in_flight, server.in_flight)
        server.arrived.release()
        server.release.wait(10)
        with server.lock:
            server.in_flight -= 1
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if server.close_after_answer:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer


def serve(recorder: Recorder) -> Iterator[Recorder]:
    thread = threading.Thread(target=recorder.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield recorder
    recorder.release.set()
    recorder.shutdown()
    recorder.server_close()


@pytest.fixture
def server() -> Iterator[Recorder]:
    yield from serve(Recorder())


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """An HTTPS server whose certificate a CA of the test's signed; clients trust that CA."""
    ca, cert, key = write_tls_files(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # read by httpx's default SSL context
    recorder = Recorder()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    recorder.socket = context.wrap_socket(recorder.socket, server_side=True)
    yield from serve(recorder)


async def fetch(transport: ExclusiveConnectionTransport, url: str, **options: Any) -> bytes:
    request = httpx.Request("GET", url, **options)
    reply = await transport.handle_async_request(request)
    try:
        return await reply.aread()
    finally:
        await reply.aclose()


async def wait_for_arrivals(server: Recorder, count: int) -> None:
    for _ in range(count):
        assert await asyncio.to_thread(server.arrived.acquire, True, 10)


async def test_one_after_another_share_one_connection(server: Recorder) -> None:
    transport = ExclusiveConnectionTransport()
    for _ in range(5):
        assert json.loads(await fetch(transport, server.url)) == {"ok": True}
    await transport.aclose()
    assert len(server.ports) == 5
    assert len(set(server.ports)) == 1


async def test_requests_in_flight_each_have_a_connection_then_reuse_them(
    server: Recorder,
) -> None:
    transport = ExclusiveConnectionTransport()
    for _ in range(2):
        server.release.clear()
        burst = [asyncio.ensure_future(fetch(transport, server.url)) for _ in range(5)]
        await wait_for_arrivals(server, 5)  # all five at the server at once
        server.release.set()
        await asyncio.gather(*burst)
    await transport.aclose()
    first, second = server.ports[:5], server.ports[5:]
    assert len(set(first)) == 5
    assert set(second) == set(first)  # the second burst opened no connection


async def test_requests_beyond_max_connections_wait_for_one(server: Recorder) -> None:
    transport = ExclusiveConnectionTransport(max_connections=2)
    server.release.clear()
    burst = [asyncio.ensure_future(fetch(transport, server.url)) for _ in range(5)]
    await wait_for_arrivals(server, 2)
    server.release.set()
    await asyncio.gather(*burst)
    await transport.aclose()
    assert server.most_in_flight == 2
    assert len(set(server.ports)) == 2


async def test_connection_the_server_closed_is_not_reused(server: Recorder) -> None:
    transport = ExclusiveConnectionTransport()
    server.close_after_answer = True
    for _ in range(3):
        assert await fetch(transport, server.url) == b'{"ok": true}'
    await transport.aclose()
    assert len(set(server.ports)) == 3


async def test_answer_left_unread_closes_its_connection(server: Recorder) -> None:
    transport = ExclusiveConnectionTransport()
    reply = await transport.handle_async_request(httpx.Request("GET", server.url))
    await reply.aclose()  # headers read, body not
    assert await fetch(transport, server.url) == b'{"ok": true}'
    await transport.aclose()
    assert len(set(server.ports)) == 2


async def test_post_body_arrives_intact(server: Recorder) -> None:
    transport = ExclusiveConnectionTransport()
    request = httpx.Request("POST", server.url, json={"code": "abc", "n": 1})
    reply = await transport.handle_async_request(request)
    await reply.aread()
    await reply.aclose()
    await transport.aclose()
    assert json.loads(server.bodies[0]) == {"code": "abc", "n": 1}


async def test_unreachable_is_httpx_connect_error_and_frees_its_slot(server: Recorder) -> None:
    transport = ExclusiveConnectionTransport(max_connections=1)
    with pytest.raises(httpx.ConnectError) as raised:
        await fetch(transport, "http://127.0.0.1:9/path?secret=s3cret")
    assert "s3cret" not in str(raised.value)
    # The one slot is free again: a leaked one would make this wait forever.
    assert await asyncio.wait_for(fetch(transport, server.url), 10) == b'{"ok": true}'
    await transport.aclose()


async def test_read_timeout_is_httpx_read_timeout(server: Recorder) -> None:
    transport = ExclusiveConnectionTransport()
    server.release.clear()
    timeout = httpx.Timeout(0.2).as_dict()
    with pytest.raises(httpx.ReadTimeout):
        await fetch(transport, server.url, extensions={"timeout": timeout})
    server.release.set()
    assert await fetch(transport, server.url) == b'{"ok": true}'
    await transport.aclose()
    assert len(set(server.ports)) == 2  # the timed-out connection was not reused


async def test_https_with_a_trusted_certificate_reuses_its_connection(
    tls_server: Recorder,
) -> None:
    transport = ExclusiveConnectionTransport()
    for _ in range(3):
        assert await fetch(transport, tls_server.url) == b'{"ok": true}'
    await transport.aclose()
    assert len(set(tls_server.ports)) == 1


async def test_https_with_an_untrusted_certificate_is_a_connect_error(
    tls_server: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")  # back to the public CAs: the test CA is unknown
    transport = ExclusiveConnectionTransport()
    with pytest.raises(httpx.ConnectError):
        await fetch(transport, tls_server.url)
    await transport.aclose()
    assert tls_server.ports == []  # no request was sent


async def test_untrusted_wechat_is_unreachable_for_the_async_client(
    tls_server: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    base = tls_server.url.rsplit("/", 1)[0]
    client = AsyncWeChatClient(WxConfig(appid="wxa", secret="s3cret-value", api_base=base))
    with pytest.raises(UpstreamUnreachable) as raised:
        await client.code_to_session("a-code")
    await client.aclose()
    assert "s3cret" not in str(raised.value) and "a-code" not in str(raised.value)
