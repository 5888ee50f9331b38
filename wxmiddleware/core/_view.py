"""The request view: what the adapter hands the core, and the header names it reads.

:class:`RequestView` is built once per request by the adapter; :class:`HeaderNames` says,
once at start-up, under which keys of the adapter's :class:`HeaderMap` each header the core
reads is found.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, FrozenSet, Optional, Protocol, Tuple, Union

from ..config import WAFER_SKEY_HEADER, WxConfig, header_key

#: The header a client that is not a mini-program page names its app in (see :mod:`._apps`).
APPID_HEADER = "X-WX-Appid"
# The login headers of Tencent's Wafer client SDK (wafer2-client-sdk, lib/login.js): the code
# from wx.login(), and the user info from wx.getUserInfo() with its iv.
WAFER_CODE_HEADER = "X-WX-Code"
WAFER_ENCRYPTED_DATA_HEADER = "X-WX-Encrypted-Data"
WAFER_IV_HEADER = "X-WX-IV"


class HeaderMap(Protocol):
    """A request's headers, keyed as the adapter keeps them (see :class:`HeaderNames`).

    ``get(key)`` gives the value or ``None``. A ``dict`` is one: the WSGI environ itself, or
    the map the ASGI adapter builds once per request. The token and Wafer headers are read
    as WSGI servers present them: names compared case-insensitively with ``_`` read as
    ``-``, repeats joined with commas. The framing headers (``Content-Type``,
    ``Content-Length``, ``Transfer-Encoding``) are read only under their real names, the
    first value winning, as servers read them: a client's ``content_length`` must not
    stand in for the real one.
    """

    def get(self, key: str) -> Optional[Any]:
        """The value of the header under ``key``, or ``None``."""


@dataclass(frozen=True)
class HeaderNames:
    """Every header the core reads, as a key of the adapter's :class:`HeaderMap`.

    Built once at start-up by :meth:`for_config` with the adapter's ``key`` function: the
    identity for a map keyed by normalised name (lower case, ``_`` read as ``-``), or
    ``3rd-session`` -> ``HTTP_3RD_SESSION`` for the WSGI environ (PEP 3333), so a request
    builds no header map of its own.
    """

    tokens: Tuple[str, ...]
    content_type: str
    content_length: str
    transfer_encoding: str
    wafer_code: str
    wafer_encrypted_data: str
    wafer_iv: str
    wafer_skey: str
    #: ``Referer`` and ``X-WX-Appid``, which name a request's app; ``""`` (never read) unless
    #: the configuration serves several apps (:mod:`._apps`).
    referer: str = ""
    appid: str = ""

    @classmethod
    def for_config(
        cls, config: WxConfig, key: Optional[Callable[[str], str]] = None
    ) -> HeaderNames:
        """The keys for ``config``'s token headers and the fixed ones, through ``key`` (by
        default the normalised names themselves)."""
        if key is None:
            return cls.for_config(config, lambda name: name)
        tokens = tuple(dict.fromkeys(key(header_key(name)) for name in config.token_headers))
        if config.multi_app:
            return replace(
                cls.for_config(config.for_app(config.appid), key),
                referer=key("referer"),
                appid=key(header_key(APPID_HEADER)),
            )
        return cls(
            tokens,
            *(
                key(header_key(name))
                for name in (
                    "Content-Type",
                    "Content-Length",
                    "Transfer-Encoding",
                    WAFER_CODE_HEADER,
                    WAFER_ENCRYPTED_DATA_HEADER,
                    WAFER_IV_HEADER,
                    WAFER_SKEY_HEADER,
                )
            ),
        )

    def framing_keys(self) -> FrozenSet[str]:
        """The framing headers' keys: real names only, the first value wins."""
        return frozenset((self.content_type, self.content_length, self.transfer_encoding))

    def lookup_keys(self) -> FrozenSet[str]:
        """The keys an authenticated request reads: the token headers, and the app-naming
        ones when the configuration serves several apps."""
        apps = (self.referer, self.appid) if self.referer else ()
        return frozenset((*self.tokens, *apps))

    def joined_keys(self) -> FrozenSet[str]:
        """The token, Wafer and app headers' keys: ``_`` read as ``-``, repeats joined."""
        wafer = (self.wafer_code, self.wafer_encrypted_data, self.wafer_iv, self.wafer_skey)
        apps = (self.referer, self.appid) if self.referer else ()
        return frozenset((*self.tokens, *wafer, *apps))


class RequestView:
    """What the core sees of a request, built once by the adapter.

    - ``method``: ``"GET"``, ``"POST"``…; ``path``: the decoded path below the mount point
      (``PATH_INFO``, or ``path`` minus ``root_path``); ``raw_path``: the path as sent
      (``str``, or ``bytes`` from ASGI), or ``None`` when the server does not say;
    - ``query``: the raw query string (``bytes`` from ASGI, ``str`` from WSGI);
    - ``headers``: a :class:`HeaderMap` keyed as the pipeline's :class:`HeaderNames` say;
    - ``websocket``: a websocket handshake rather than an HTTP request;
    - ``body_framed``: truthy when a body without ``Content-Length`` can still be read to its end
      (ASGI always; WSGI when the server sets ``wsgi.input_terminated``);
    - ``client``: the peer's address as the server reports it (``REMOTE_ADDR``, or the host
      of ``scope["client"]``), or ``None`` when it does not say;
    - ``raw_headers`` and ``read_headers``: when the adapter must build the header map (ASGI's
      list of pairs), it may pass as ``headers`` a map holding only the lookup headers
      (:meth:`HeaderNames.lookup_keys`, all that an authenticated request reads), and
      ``read_headers(raw_headers)`` builds the whole map the first time :attr:`headers` is
      read. :attr:`lookup_headers` is the map given.
    """

    __slots__ = (
        "_headers",
        "_raw_headers",
        "_read_headers",
        "body_framed",
        "client",
        "lookup_headers",
        "method",
        "path",
        "query",
        "raw_path",
        "websocket",
    )

    def __init__(
        self,
        method: str,
        path: str,
        raw_path: Union[str, bytes, None],
        query: Union[str, bytes],
        headers: HeaderMap,
        websocket: bool = False,
        body_framed: Any = True,
        client: Optional[str] = None,
        raw_headers: Any = None,
        read_headers: Optional[Callable[[Any], HeaderMap]] = None,
    ) -> None:
        self.method = method
        self.path = path
        self.raw_path = raw_path
        self.query = query
        self.lookup_headers = headers
        self._headers = headers if read_headers is None else None
        self._raw_headers = raw_headers
        self._read_headers = read_headers
        self.websocket = websocket
        self.body_framed = body_framed
        self.client = client

    @property
    def headers(self) -> HeaderMap:
        """Every header the core reads (built on first use when the adapter gave only the
        lookup headers)."""
        headers = self._headers
        if headers is None:
            read: Callable[[Any], HeaderMap] = self._read_headers  # type: ignore[assignment]
            headers = self._headers = read(self._raw_headers)
        return headers
