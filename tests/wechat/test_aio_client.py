"""AsyncWeChatClient (on aiohttp) against a real HTTP/1.1 server on loopback.

The server records which client port (which TCP connection) carried each request, what it
received, how many requests it was handling at once, and can hold answers until the test
lets them go, so reuse and concurrency are asserted by what the server saw, never by timing.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import ssl
import threading
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tests.tls_support import write_tls_files
from wxmiddleware import WxConfig
from wxmiddleware.core import HttpCall
from wxmiddleware.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from wxmiddleware.testing import FakeWeChat
from wxmiddleware.wechat.aio import AsyncWeChatClient

pytestmark = pytest.mark.anyio

SECRET = "s3cret-value"
CONFIG = WxConfig(appid="wxa", secret=SECRET, api_base="http://127.0.0.1:9")
ANSWER = b'{"ok": true}'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # a burst of a hundred connects at once

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.ports: List[int] = []
        self.requests: List[Tuple[str, Dict[str, str], bytes]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.release.set()
        self.arrived = threading.Semaphore(0)
        self.hung_up = threading.Semaphore(0)  # a connection ended
        self.answer = ANSWER
        self.close_after_answer = False
        self.drop = False  # close the connection instead of answering

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
            headers = {name.lower(): value for name, value in self.headers.items()}
            server.requests.append((self.path, headers, self.rfile.read(length)))
            server.in_flight += 1
            server.most_in_flight = max(server.most_in_flight, server.in_flight)
        server.arrived.release()
        server.release.wait(10)
        with server.lock:
            server.in_flight -= 1
        if server.drop:
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(server.answer)))
        self.send_header("Wechatmp-Serial", "serial-1")
        if server.close_after_answer:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(server.answer)

    do_GET = _answer
    do_POST = _answer

    def finish(self) -> None:
        super().finish()
        self.server.hung_up.release()


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
def tls_files(tmp_path: Path) -> Tuple[Path, Path, Path]:
    return write_tls_files(tmp_path)


@pytest.fixture
def tls_server(tls_files: Tuple[Path, Path, Path]) -> Iterator[Recorder]:
    """An HTTPS server whose certificate the test's CA signed (no trust store holds it)."""
    _, cert, key = tls_files
    recorder = Recorder()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    recorder.socket = context.wrap_socket(recorder.socket, server_side=True)
    yield from serve(recorder)


def get(url: str, **params: str) -> HttpCall:
    return HttpCall("GET", url, params)


async def wait_for_arrivals(server: Recorder, count: int) -> None:
    for _ in range(count):
        assert await asyncio.to_thread(server.arrived.acquire, True, 10)


async def test_calls_one_after_another_share_one_connection(server: Recorder) -> None:
    client = AsyncWeChatClient(CONFIG)
    for _ in range(5):
        assert await client.request(get(server.url)) == (200, ANSWER)
    await client.aclose()
    assert len(server.ports) == 5
    assert len(set(server.ports)) == 1


async def test_calls_in_flight_each_have_a_connection_then_reuse_them(server: Recorder) -> None:
    client = AsyncWeChatClient(CONFIG)
    for _ in range(2):
        server.release.clear()
        burst = [asyncio.ensure_future(client.request(get(server.url))) for _ in range(5)]
        await wait_for_arrivals(server, 5)  # all five at the server at once
        server.release.set()
        assert await asyncio.gather(*burst) == [(200, ANSWER)] * 5
    await client.aclose()
    first, second = server.ports[:5], server.ports[5:]
    assert len(set(first)) == 5
    assert set(second) == set(first)  # the second burst opened no connection


async def test_at_most_a_hundred_calls_in_flight_the_others_wait(server: Recorder) -> None:
    client = AsyncWeChatClient(CONFIG)
    server.release.clear()
    burst = [asyncio.ensure_future(client.request(get(server.url))) for _ in range(105)]
    await wait_for_arrivals(server, 100)
    server.release.set()
    assert await asyncio.gather(*burst) == [(200, ANSWER)] * 105
    await client.aclose()
    assert server.most_in_flight == 100
    assert len(set(server.ports)) == 100  # the last five waited for a connection


async def test_connection_the_server_closed_is_not_reused(server: Recorder) -> None:
    client = AsyncWeChatClient(CONFIG)
    server.close_after_answer = True
    for _ in range(3):
        assert await client.request(get(server.url)) == (200, ANSWER)
    await client.aclose()
    assert len(set(server.ports)) == 3


async def test_answer_refused_half_read_closes_its_connection(server: Recorder) -> None:
    client = AsyncWeChatClient(CONFIG)
    server.answer = b" " * (1024 * 1024)  # more than a WeChat answer can be
    with pytest.raises(UpstreamError, match="more than"):
        await client.request(get(server.url))
    server.answer = ANSWER
    assert await client.request(get(server.url)) == (200, ANSWER)
    await client.aclose()
    assert len(set(server.ports)) == 2


async def test_connection_dropped_before_the_answer_is_not_resent(server: Recorder) -> None:
    # The request may have reached WeChat and spent its code: never send it twice.
    client = AsyncWeChatClient(CONFIG)
    server.drop = True
    with pytest.raises(UpstreamError) as raised:
        await client.request(get(server.url, js_code="a-code"))
    await client.aclose()
    assert raised.value.error == "upstream_error"
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("call", "content_type", "sent"),
    [
        (HttpCall("POST", "", {}, body={"code": "abc", "n": 1}), "application/json", None),
        (
            HttpCall("POST", "", {}, form={"code": "a&b=c", "n": "1"}),
            "application/x-www-form-urlencoded",
            b"code=a%26b%3Dc&n=1",
        ),
        (
            HttpCall("POST", "", {}, content=b'{"sealed":1}', headers={"Content-Type": "x/y"}),
            "x/y",
            b'{"sealed":1}',
        ),
    ],
)
async def test_bodies_arrive_intact(
    server: Recorder, call: HttpCall, content_type: str, sent: Any
) -> None:
    client = AsyncWeChatClient(CONFIG)
    await client.request(call._replace(url=server.url))
    await client.aclose()
    _, headers, body = server.requests[0]
    assert headers["content-type"] == content_type
    if sent is None:
        assert json.loads(body) == call.body
    else:
        assert body == sent


async def test_query_is_url_encoded_and_answer_headers_come_back(server: Recorder) -> None:
    client = AsyncWeChatClient(CONFIG)
    code = "x&appid=other +/%?#"
    call = get(server.url, appid="wxa", js_code=code)._replace(reply_headers=("wechatmp-serial",))
    assert await client.request(call) == (200, ANSWER, {"wechatmp-serial": "serial-1"})
    await client.aclose()
    query = parse_qs(urlsplit(server.requests[0][0]).query)
    assert query == {"appid": ["wxa"], "js_code": [code]}  # a code injects no parameter


async def test_unreachable_is_upstream_unreachable_and_frees_its_connection(
    server: Recorder,
) -> None:
    client = AsyncWeChatClient(CONFIG)
    refused = get("http://127.0.0.1:9/path", secret=SECRET)
    failures = await asyncio.gather(
        *(client.request(refused) for _ in range(100)), return_exceptions=True
    )
    assert all(isinstance(failure, UpstreamUnreachable) for failure in failures)
    assert not any(SECRET in f"{failure} {failure!r}" for failure in failures)
    # Every connection is free again: a leaked one would make this call wait its deadline out.
    assert await client.request(get(server.url)) == (200, ANSWER)
    await client.aclose()


async def test_read_timeout_is_upstream_timeout_and_its_connection_is_not_reused(
    server: Recorder,
) -> None:
    client = AsyncWeChatClient(WxConfig(appid="wxa", secret=SECRET, read_timeout=0.2))
    server.release.clear()
    with pytest.raises(UpstreamTimeout):
        await client.request(get(server.url))
    server.release.set()
    assert await client.request(get(server.url)) == (200, ANSWER)
    await client.aclose()
    assert len(set(server.ports)) == 2  # the timed-out connection was not reused


async def test_untrusted_certificate_is_502_upstream_unreachable(tls_server: Recorder) -> None:
    base = tls_server.url.rsplit("/", 1)[0]
    client = AsyncWeChatClient(WxConfig(appid="wxa", secret=SECRET, api_base=base))
    with pytest.raises(UpstreamUnreachable) as raised:
        await client.code_to_session("a-code")
    await client.aclose()
    assert (raised.value.status, raised.value.error) == (502, "upstream_unreachable")
    assert SECRET not in str(raised.value) and "a-code" not in str(raised.value)
    assert tls_server.ports == []  # no request was sent


async def test_session_passed_in_sends_the_calls_and_stays_open(
    tls_server: Recorder, tls_files: Tuple[Path, Path, Path]
) -> None:
    trusting = ssl.create_default_context(cafile=str(tls_files[0]))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as http:
        client = AsyncWeChatClient(CONFIG, http=http)
        for _ in range(3):
            assert await client.request(get(tls_server.url)) == (200, ANSWER)
        await client.aclose()
        assert not http.closed
    assert len(set(tls_server.ports)) == 1  # over HTTPS, one connection kept alive


def test_each_event_loop_has_its_own_connections(
    server: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    client = AsyncWeChatClient(CONFIG)
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(client.request(get(server.url))) == (200, ANSWER)
    loop.close()  # without aclose(): its connections end with it
    ended = weakref.ref(loop)
    del loop

    async def call_and_close() -> Any:
        try:
            return await client.request(get(server.url))
        finally:
            await client.aclose()

    assert asyncio.run(call_and_close()) == (200, ANSWER)
    gc.collect()
    assert ended() is None  # the client keeps nothing of a loop that ended
    assert len(set(server.ports)) == 2  # connections never cross loops
    assert errors_logged(caplog) == []  # the ended loop's session was closed


def errors_logged(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_loop_shut_down_closes_its_session_without_aclose(
    server: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    client = AsyncWeChatClient(CONFIG)
    assert asyncio.run(client.request(get(server.url))) == (200, ANSWER)
    assert server.hung_up.acquire(True, 10)  # asyncio.run ended the connection
    del client
    gc.collect()
    assert errors_logged(caplog) == []  # aiohttp logs a session collected open


async def test_a_client_dropped_without_aclose_closes_its_session(
    server: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    client = AsyncWeChatClient(CONFIG)
    assert await client.request(get(server.url)) == (200, ANSWER)
    del client
    gc.collect()
    assert await asyncio.to_thread(server.hung_up.acquire, True, 10)
    assert errors_logged(caplog) == []


async def test_no_log_record_and_no_error_carries_a_secret(
    fake_wechat: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: aiohttp's, asyncio's, ours
    config = WxConfig(appid=fake_wechat.appid, secret=fake_wechat.secret, api_base=fake_wechat.url)
    client = AsyncWeChatClient(config)
    code = fake_wechat.issue_code()
    await client.code_to_session(code)
    fake_wechat.inject("close")
    with pytest.raises(UpstreamError) as raised:
        await client.code_to_session("spent-code")
    await client.aclose()
    assert fake_wechat.jscode2session_calls == 2  # the dropped call was not resent
    shown = [record.getMessage() for record in caplog.records] + [str(raised.value)]
    assert any("jscode2session" in line for line in shown)  # the calls were logged
    for secret in (fake_wechat.secret, code, "spent-code"):
        assert not any(secret in line for line in shown)
