"""An httpx transport that gives every request in flight a connection of its own.

httpx's default pool (httpcore 1.0) hands one idle connection to every request queued at the
same instant and makes all but one of them retry: a burst of a hundred logins costs CPU
quadratic in its size (about 20 ms per login with a hundred idle connections kept). Capping the
idle connections avoids that but then closes nearly every connection after use, one TCP connect
per login. Here each request checks a connection out of a LIFO list of idle ones (or opens a
new one) and puts it back once its answer has been read in full: no contention, no retries,
and a steady stream of logins reuses a steady set of connections (``benchmarks/RESULTS.md``
keeps the measured alternatives).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import AsyncIterator, Dict, List, Tuple

import httpcore
import httpx

__all__ = ["ExclusiveConnectionTransport"]

_Origin = Tuple[bytes, bytes, int]
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_HTTPCORE_ERRORS = (
    httpcore.NetworkError,
    httpcore.TimeoutException,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ConnectionNotAvailable,
    # httpcore 0.17 lets a failed TLS handshake (and some socket errors) through unwrapped.
    OSError,
)


def _httpx_error(exc: BaseException) -> httpx.TransportError:
    """httpx's exception for an httpcore one (the two libraries share the class names)."""
    if isinstance(exc, ssl.SSLError):
        return httpx.ConnectError(type(exc).__name__)
    if isinstance(exc, OSError):
        return httpx.NetworkError(type(exc).__name__)
    error_class = getattr(httpx, type(exc).__name__, None)
    if not (isinstance(error_class, type) and issubclass(error_class, httpx.TransportError)):
        error_class = httpx.TransportError
    return error_class(type(exc).__name__)


class ExclusiveConnectionTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with one connection per request in flight, at most ``max_connections`` at once.

    Create it inside the event loop that uses it; it never crosses loops. A request beyond
    ``max_connections`` waits for one to be released (bound the wait with a deadline of your
    own). A connection goes back to the idle list only after a complete answer; any error,
    or an answer left unread, closes it. Idle connections close after ``keepalive_expiry``
    seconds, or as soon as the server closes them.
    """

    def __init__(self, max_connections: int = 100, keepalive_expiry: float = 5.0) -> None:
        self._ssl_context = httpx.create_ssl_context()
        self._keepalive_expiry = keepalive_expiry
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: Dict[_Origin, List[httpcore.AsyncHTTPConnection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on a connection of its own; the answer's body streams from it."""
        url = request.url
        origin = (url.raw_scheme, url.raw_host, url.port or _DEFAULT_PORTS.get(url.raw_scheme, 80))
        await self._slots.acquire()
        try:
            connection = await self._check_out(origin)
            core_request = httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
            try:
                reply = await connection.handle_async_request(core_request)
            except BaseException as exc:
                await connection.aclose()
                if isinstance(exc, _HTTPCORE_ERRORS):
                    raise _httpx_error(exc) from None
                raise
        except BaseException:
            self._slots.release()
            raise
        return httpx.Response(
            status_code=reply.status,
            headers=reply.headers,
            stream=_ConnectionStream(self, origin, connection, reply),
            extensions=reply.extensions,
        )

    async def _check_out(self, origin: _Origin) -> httpcore.AsyncHTTPConnection:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.has_expired():
                return connection
            await connection.aclose()
        return httpcore.AsyncHTTPConnection(
            httpcore.Origin(*origin),
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
        )

    async def _release(self, origin: _Origin, connection: httpcore.AsyncHTTPConnection) -> None:
        # A connection is opened only when no idle one is left, so an origin's idle and busy
        # connections never outnumber max_connections: the idle list needs no cap of its own.
        try:
            if connection.is_idle():
                self._idle.setdefault(origin, []).append(connection)
            else:
                await connection.aclose()
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        """Close every idle connection (those in use close when their answers do)."""
        idle = [connection for connections in self._idle.values() for connection in connections]
        self._idle.clear()
        for connection in idle:
            await connection.aclose()


class _ConnectionStream(httpx.AsyncByteStream):
    """An answer's body; closing it hands the connection back to the transport."""

    def __init__(
        self,
        transport: ExclusiveConnectionTransport,
        origin: _Origin,
        connection: httpcore.AsyncHTTPConnection,
        reply: httpcore.Response,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection = connection
        self._reply = reply
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._reply.aiter_stream():
                yield chunk
        except _HTTPCORE_ERRORS as exc:
            raise _httpx_error(exc) from None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._reply.aclose()
        finally:
            await self._transport._release(self._origin, self._connection)
