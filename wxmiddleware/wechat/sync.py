"""The synchronous WeChat client, on one reused ``requests.Session``.

:meth:`WeChatClient.request` is the one HTTP exchange every API call goes through (the
transport the :class:`~wxmiddleware._perform.SyncPerformer` sends ``HttpCall`` effects to).
"""

from __future__ import annotations

import time
from typing import Iterator, Optional

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError, NewConnectionError, ReadTimeoutError

from .._perform import Reply, SyncPerformer
from ..config import WxConfig
from ..core._effects import HttpCall
from ..core._upstream import jscode2session
from ..errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable, WxError
from . import _protocol
from ._protocol import CodeSession, ReplyCollector, answer_headers, log_reply, reply_deadline
from ._redact import install_redaction


def _translate(exc: Exception) -> WxError:
    """Our error for a client exception, named by class only (never its message)."""
    # requests wraps urllib3's error (sometimes inside a MaxRetryError) as its first argument.
    cause = exc.args[0] if isinstance(exc, requests.RequestException) and exc.args else exc
    cause = getattr(cause, "reason", None) or cause
    if isinstance(exc, requests.ConnectTimeout) or isinstance(cause, NewConnectionError):
        return UpstreamUnreachable(detail=type(cause).__name__)
    if isinstance(exc, requests.Timeout) or isinstance(cause, ReadTimeoutError):
        return UpstreamTimeout(detail=type(cause).__name__)
    return UpstreamError("The connection to WeChat failed.", detail=type(cause).__name__)


def _body_chunks(reply: requests.Response) -> Iterator[bytes]:
    """Yield the body as it arrives, so a slow drip meets the deadline between bytes."""
    read1 = getattr(reply.raw, "read1", None)
    if read1 is None:
        # urllib3 1.x only reads whole chunks; single bytes keep the deadline honest.
        yield from reply.iter_content(1)
        return
    while True:
        chunk = read1(8192, decode_content=True)
        if not chunk:
            return
        yield chunk


class WeChatClient:
    """Calls WeChat with short timeouts; jscode2session with at most one safe retry.

    Exceptions are always :class:`~wxmiddleware.errors.WxError` whose message names the
    cause by class only: a ``requests`` exception prints the URL with its query string,
    which holds the app secret (or an access token), so it is never passed on.
    """

    def __init__(self, config: WxConfig, http: Optional[requests.Session] = None) -> None:
        install_redaction()
        self._config = config
        self._timeout = (config.connect_timeout, config.read_timeout)
        if http is None:
            http = requests.Session()
            # Threaded servers share this session; let each thread keep a connection.
            http.mount("https://", HTTPAdapter(pool_maxsize=32, max_retries=0))
            http.mount("http://", HTTPAdapter(pool_maxsize=32, max_retries=0))
        self._http = http

    def code_to_session(self, code: str) -> CodeSession:
        """Exchange a ``wx.login()`` code for openid, session_key and unionid (one safe retry)."""
        flow = jscode2session(self._config, code)
        return SyncPerformer(None, self).run(flow)

    def request(self, call: HttpCall) -> Reply:
        """One exchange with WeChat, within the configured timeouts: ``(status, body)``.

        The :class:`~wxmiddleware.core.HttpCall`'s ``params`` go in the query string,
        URL-encoded; its ``body``, when given, is sent as JSON, its ``form`` as a form, its
        ``content`` as it is, with its ``headers``; the answer's ``reply_headers`` come back
        as a third item. The whole answer must arrive
        before ``connect_timeout + read_timeout`` and be at most 64 KB. Never retries.
        """
        started = time.monotonic()
        collector = ReplyCollector(reply_deadline(self._config))
        try:
            options = _protocol.request_options(call, self._timeout)
            with self._http.request(call.method, call.url, stream=True, **options) as reply:
                for chunk in _body_chunks(reply):
                    collector.feed(chunk)
                status = reply.status_code
                headers = answer_headers(reply.headers, call.reply_headers)
        except (requests.RequestException, HTTPError) as exc:
            raise _translate(exc) from None
        log_reply(call.method, call.url, status, collector.size, started)
        if call.reply_headers:
            return status, collector.body, headers
        return status, collector.body

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()
