"""The asynchronous WeChat client, on ``aiohttp.ClientSession`` (``wxmiddleware[asgi]``).

:meth:`AsyncWeChatClient.request` is the one HTTP exchange every API call goes through (the
transport the :class:`~wxmiddleware._perform.AsyncPerformer` sends ``HttpCall`` effects to).
"""

from __future__ import annotations

import asyncio
import time
from typing import AsyncGenerator, Dict, Optional

try:
    import aiohttp
except ImportError:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the ASGI middleware needs aiohttp: pip install 'wxmiddleware[asgi]'", name="aiohttp"
    ) from None

from .._perform import AsyncPerformer, Reply
from ..config import WxConfig
from ..core._effects import HttpCall
from ..core._upstream import jscode2session
from ..errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable, WxError
from . import _protocol
from ._protocol import CodeSession, ReplyCollector, answer_headers, log_reply, reply_deadline
from ._redact import install_redaction

__all__ = ["AsyncWeChatClient"]

# At most 100 WeChat requests in flight per event loop; more wait for a connection (within
# the call's deadline).
_MAX_CONNECTIONS = 100


def _translate(exc: BaseException) -> WxError:
    """Our error for an aiohttp exception or timeout, named by class only: aiohttp's
    messages name the host, and some the whole URL with its query string."""
    name = type(exc).__name__
    # A refused connection, a failed TLS handshake or certificate: nothing was sent.
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return UpstreamUnreachable(detail=name)
    # aiohttp's read timeout (SocketTimeoutError) or the whole call's deadline.
    if isinstance(exc, asyncio.TimeoutError):
        return UpstreamTimeout(detail=name)
    return UpstreamError("The connection to WeChat failed.", detail=name)


def _new_session() -> aiohttp.ClientSession:
    """A session for the running loop: keep-alive connections, TLS verified against the
    system's trust store, no cookies (WeChat's APIs set none worth sending back)."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=_MAX_CONNECTIONS),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    # aiohttp resends an idempotent request (jscode2session is a GET) once when its
    # connection breaks before the answer's head, when the code may already have reached
    # WeChat: a code is single-use, and core.exchange alone decides what is retried.
    # aiohttp has no public switch for it; its own tests turn it off this way.
    session._retry_connection = False
    return session


async def _closing(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Holds ``session`` until the generator is closed: by ``aclose()``, by the loop's
    ``shutdown_asyncgens()`` or when it is garbage collected (the loop's finalizer)."""
    try:
        yield
    finally:
        await session.close()


class AsyncWeChatClient:
    """Calls WeChat with short timeouts (jscode2session with one safe retry), without blocking.

    Requests go through an ``aiohttp.ClientSession`` created on first use inside the running
    event loop and reused by every later call in that loop (a call from another loop gets
    one of its own: connections never cross loops): at most 100 connections at once, kept
    alive between calls, certificates verified against the system's trust store. Each is
    closed by :meth:`aclose` in its loop, else when the loop shuts down (``asyncio.run``,
    anyio, uvicorn) or this client is dropped. An
    ``aiohttp.ClientSession`` passed as ``http`` sends them instead (in the loop it belongs
    to), and stays the caller's to close; aiohttp then resends a GET once when the
    connection breaks before the answer, which the sessions made here never do.

    ``config.connect_timeout`` bounds the TCP and TLS connect, ``config.read_timeout`` each
    wait for the answer's bytes, and their sum the whole call (aiohttp's ``ClientTimeout``).
    Exceptions are always :class:`~wxmiddleware.errors.WxError` whose message names the
    cause by class only: an aiohttp exception may print the URL with its query string,
    which holds the app secret (or an access token), so it is never passed on.
    """

    def __init__(self, config: WxConfig, http: Optional[aiohttp.ClientSession] = None) -> None:
        install_redaction()
        self._config = config
        self._timeout = aiohttp.ClientTimeout(
            total=config.connect_timeout + config.read_timeout,
            sock_connect=config.connect_timeout,
            sock_read=config.read_timeout,
        )
        self._http = http
        self._sessions: Dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._closers: Dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}

    async def code_to_session(self, code: str) -> CodeSession:
        """See :meth:`wxmiddleware.wechat.sync.WeChatClient.code_to_session`."""
        flow = jscode2session(self._config, code)
        return await AsyncPerformer(None, self).run(flow)

    async def request(self, call: HttpCall) -> Reply:
        """See :meth:`wxmiddleware.wechat.sync.WeChatClient.request`."""
        started = time.monotonic()
        collector = ReplyCollector(reply_deadline(self._config))
        http = self._http
        if http is None:
            http = self._sessions.get(asyncio.get_running_loop()) or await self._open_session()
        try:
            options = _protocol.request_options(call, self._timeout)
            async with http.request(call.method, call.url, **options) as reply:
                async for chunk in reply.content.iter_any():
                    collector.feed(chunk)
                status = reply.status
                headers = answer_headers(reply.headers, call.reply_headers)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _translate(exc) from None
        log_reply(call.method, call.url, status, collector.size, started)
        if call.reply_headers:
            return status, collector.body, headers
        return status, collector.body

    async def _open_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        # Registered before the first await, so that concurrent first calls share it.
        session = self._sessions[loop] = _new_session()
        # aiohttp logs an error for a session garbage-collected open, and an app may never
        # call aclose() (an ASGI server or test client without lifespan, Django). An async
        # generator holding the session closes it when the loop shuts its async generators
        # down (asyncio.run, anyio and uvicorn do) or, once this client is dropped, when the
        # loop finalizes the generator.
        closer = self._closers[loop] = _closing(session)
        await closer.asend(None)
        # A session holds its loop: the entry of a loop that ended without either would
        # stay forever. Closing a session whose loop ended touches no loop.
        for ended in [other for other in self._closers if other.is_closed()]:
            await self._close(ended)
        return session

    async def _close(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sessions.pop(loop, None)
        closer = self._closers.pop(loop, None)
        if closer is not None:
            await closer.aclose()

    async def aclose(self) -> None:
        """Close the connections this object opened in the running loop (not a session
        passed in)."""
        await self._close(asyncio.get_running_loop())
