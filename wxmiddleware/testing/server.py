"""The fake WeChat's HTTP server: :class:`FakeWeChat`, the behaviour model on a loopback port.

The handler only reads a request, hands it to the model (:mod:`.model`) or to the control
endpoints (:mod:`.control`), waits as long as the model says, and writes the reply, acting out
the faults that happen on the socket: a body shorter than its Content-Length, a drip, a
dropped connection.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Callable, Mapping, Optional, Set, Tuple, Type, Union
from urllib.parse import urlsplit

from ._replies import JSON, Reply, error_body, json_bytes
from ._requests import RecordedCall
from .control import CONTROL_PREFIX, control_answer
from .model import WeChatModel
from .platforms import FakePlatforms

__all__ = ["FakeWeChat"]

logger = logging.getLogger("wxmiddleware.testing")

_MAX_BODY = 64 * 1024  # bytes; WeChat's request bodies are small JSON objects


class FakeWeChat(WeChatModel):
    """WeChat's API (:class:`~wxmiddleware.testing.model.WeChatModel`, whose docstring says
    how each endpoint answers) served on ``host:port`` by a background thread.

    ``port=0`` picks a free port; :attr:`url` is the API base to give the middleware once
    :meth:`start` (or ``with``) has bound it. ``latency`` (seconds, settable) delays every API
    answer; ``session_key_factory`` makes each login's session_key (see the attribute);
    ``apps`` (``{appid: secret}``) are served beside ``appid``.

    :attr:`platforms` (:class:`~wxmiddleware.testing.platforms.FakePlatforms`) serves the
    other mini-program platforms' login APIs under ``/qq``, ``/douyin``, ``/baidu``,
    ``/kuaishou`` and ``/alipay`` (``api_bases(fake.url)`` points a configuration there).
    """

    def __init__(
        self,
        appid: str = WeChatModel.DEFAULT_APPID,
        secret: str = WeChatModel.DEFAULT_SECRET,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        unionid: bool = True,
        latency: float = 0.0,
        session_key_factory: Optional[Callable[[], str]] = None,
        apps: Optional[Mapping[str, str]] = None,
    ) -> None:
        super().__init__(
            appid,
            secret,
            unionid=unionid,
            latency=latency,
            session_key_factory=session_key_factory,
            apps=apps,
        )
        #: QQ, Douyin, Baidu, Kuaishou and Alipay, served below their path prefixes.
        self.platforms = FakePlatforms(lambda: self.session_key_factory(), unionid)
        self.host = host
        self._requested_port = port
        self._stopping = threading.Event()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> FakeWeChat:
        """Bind the port and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("FakeWeChat is already running")
        self._stopping.clear()
        server = _Server((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeWeChat:{server.server_port}",
            daemon=True,
        )
        self._server = server
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections, without waiting for slow answers."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()  # wakes every handler sleeping in a delay
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeWeChat:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<FakeWeChat {where} appid={self.appid!r}>"

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        if self._server is None:
            raise RuntimeError("FakeWeChat is not running; call start() first")
        return self._server.server_port

    @property
    def url(self) -> str:
        """The API base to give the middleware, e.g. ``"http://127.0.0.1:41234"``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _pause(self, seconds: float) -> bool:
        """Sleep, returning ``False`` at once when the server is stopping."""
        return seconds <= 0 or not self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Handler threads are not joined on close: stop() must not wait for a slow answer.
    block_on_close = False
    # socketserver's backlog of 5 drops connections when an async client opens many at once.
    request_queue_size = 1024

    def __init__(self, address: Tuple[str, int], fake: FakeWeChat) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.fake = fake
        self._connections: Set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on reverse DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection, waking handlers blocked on a keep-alive read."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # a client that went away
            logger.debug("connection from %s ended: %r", client_address, exc)
        else:
            logger.error("FakeWeChat handler failed", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    server_version = "FakeWeChat"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection does not hold a thread forever
    # Headers and body are separate writes; with Nagle on, a keep-alive client waits ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def log_request(self, code: Union[int, str] = "-", size: Union[int, str] = "-") -> None:
        # The query string carries the secret and the code: log the path only.
        logger.debug("%s %s -> %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s", (format % args).split("?", 1)[0])

    def _dispatch(self) -> None:
        fake = self.server.fake
        body = self._read_body()
        if body is None:
            return
        call = RecordedCall.of(self.command, self.path, body, dict(self.headers.items()))
        if call.path.startswith(CONTROL_PREFIX):
            status, value = control_answer(fake, call)
            self._deliver(Reply(status, JSON, json_bytes(value)))
            return
        if fake.platforms.serves(call.path):
            self._deliver(fake.platforms.answer(call, time.monotonic()))
            return
        arrival = fake.receive(call)
        if not fake._pause(arrival.wait):
            self.close_connection = True
            return
        self._deliver(fake.reply(arrival, time.monotonic()))

    def _read_body(self) -> Optional[bytes]:
        """The request body, or ``None`` after answering a body the fake will not read."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if "Transfer-Encoding" in self.headers or not 0 <= length <= _MAX_BODY:
            self._deliver(Reply(400, JSON, error_body(44002, "invalid request body"), close=True))
            return None
        return self.rfile.read(length)

    def _deliver(self, reply: Optional[Reply]) -> None:
        """Write ``reply`` as it asks; ``None`` closes the connection without an answer."""
        if reply is None or reply.close:
            self.close_connection = True
        if reply is None:
            return
        length = len(reply.body) if reply.declared_length is None else reply.declared_length
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(length))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if reply.drip_interval is None:
            self.wfile.write(reply.body)
            return
        for index in range(len(reply.body)):
            self.wfile.write(reply.body[index : index + 1])
            self.wfile.flush()
            if not self.server.fake._pause(reply.drip_interval):
                return
