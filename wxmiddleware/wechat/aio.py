"""The asynchronous WeChat client, on ``httpx.AsyncClient`` (``wxmiddleware[asgi]``).

:meth:`AsyncWeChatClient.request` is the one HTTP exchange every API call goes through (the
transport the :class:`~wxmiddleware._perform.AsyncPerformer` sends ``HttpCall`` effects to).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Dict, Optional, Tuple

try:
    import httpx
except ImportError:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the ASGI middleware needs httpx: pip install 'wxmiddleware[asgi]'", name="httpx"
    ) from None

from .._perform import AsyncPerformer, Reply
from ..config import WxConfig
from ..core._effects import HttpCall
from ..core._upstream import jscode2session
from ..errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable, WxError
from ._exclusive import ExclusiveConnectionTransport
from ._protocol import CodeSession, ReplyCollector, answer_headers, log_reply, reply_deadline
from ._redact import install_redaction

__all__ = ["AsyncWeChatClient"]

# At most 100 WeChat requests in flight per event loop; more wait for a connection (within
# the call's deadline).
_MAX_CONNECTIONS = 100


def _translate(exc: Exception) -> WxError:
    """Our error for an httpx exception, named by class only (never its message)."""
    name = type(exc).__name__
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return UpstreamUnreachable(detail=name)
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(detail=name)
    return UpstreamError("The connection to WeChat failed.", detail=name)


class AsyncWeChatClient:
    """Calls WeChat with short timeouts (jscode2session with one safe retry), without blocking.

    Requests are ``httpx.Request`` objects sent, by default, through an
    :class:`~wxmiddleware.wechat._exclusive.ExclusiveConnectionTransport` created on first
    use inside the running event loop and reused by every later call in that loop (a call
    from another loop gets one of its own: connections never cross loops). Each request in
    flight has a connection of its own, so a burst of logins neither contends for a shared
    pool nor reconnects. An ``httpx.AsyncClient`` passed as ``http`` sends them instead, in
    whatever loop calls, and stays the caller's to close.

    Exceptions are always :class:`~wxmiddleware.errors.WxError` whose message names the
    cause by class only: an httpx exception prints the URL with its query string, which
    holds the app secret (or an access token), so it is never passed on.
    """

    def __init__(self, config: WxConfig, http: Optional[httpx.AsyncClient] = None) -> None:
        install_redaction()
        self._config = config
        # httpx.Timeout's fields, as a request's "timeout" extension.
        self._timeout = httpx.Timeout(config.read_timeout, connect=config.connect_timeout).as_dict()
        self._http = http
        self._transports: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, ExclusiveConnectionTransport
        ] = weakref.WeakKeyDictionary()

    async def code_to_session(self, code: str) -> CodeSession:
        """See :meth:`wxmiddleware.wechat.sync.WeChatClient.code_to_session`."""
        flow = jscode2session(self._config, code)
        return await AsyncPerformer(None, self).run(flow)

    async def request(self, call: HttpCall) -> Reply:
        """See :meth:`wxmiddleware.wechat.sync.WeChatClient.request`."""
        started = time.monotonic()
        deadline = reply_deadline(self._config)
        collector = ReplyCollector(deadline)
        try:
            # The collector checks the deadline between chunks; wait_for also ends a wait
            # for a chunk that never comes.
            status, headers = await asyncio.wait_for(
                self._fetch(call, collector),
                max(0.0, deadline - time.monotonic()),
            )
        except asyncio.TimeoutError:
            raise UpstreamTimeout(detail="deadline") from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            raise _translate(exc) from None
        log_reply(call.method, call.url, status, collector.size, started)
        if call.reply_headers:
            return status, collector.body, headers
        return status, collector.body

    async def _fetch(self, call: HttpCall, collector: ReplyCollector) -> Tuple[int, Dict[str, str]]:
        request = httpx.Request(
            call.method,
            call.url,
            params=call.params,
            json=call.body,
            data=call.form,
            content=call.content,
            headers=call.headers,
            extensions={"timeout": self._timeout},
        )
        if self._http is not None:
            reply = await self._http.send(request, stream=True, follow_redirects=False)
        else:
            reply = await self._transport().handle_async_request(request)
        try:
            async for chunk in reply.aiter_bytes():
                collector.feed(chunk)
            return reply.status_code, answer_headers(reply.headers, call.reply_headers)
        finally:
            await reply.aclose()

    def _transport(self) -> ExclusiveConnectionTransport:
        loop = asyncio.get_running_loop()
        transport = self._transports.get(loop)
        if transport is None:
            transport = ExclusiveConnectionTransport(max_connections=_MAX_CONNECTIONS)
            self._transports[loop] = transport
        return transport

    async def aclose(self) -> None:
        """Close the connections this object opened in the running loop (not a client passed in)."""
        transport = self._transports.pop(asyncio.get_running_loop(), None)
        if transport is not None:
            await transport.aclose()
