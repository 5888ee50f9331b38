"""What the core reads from a request: the view, the token, the login code, the limits."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    Union,
)
from urllib.parse import parse_qs

from .. import _json as bounded_json
from ..config import WAFER_SKEY_HEADER, WxConfig, header_key
from ..errors import BadRequest, InvalidSession, MethodNotAllowed, UnsupportedMediaType
from ..session import MAX_TOKEN_LENGTH
from ._routing import login_methods

MAX_CODE_LENGTH = 256
#: The header a client that is not a mini-program page names its app in (see :mod:`._apps`).
APPID_HEADER = "X-WX-Appid"
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
# Bound once: every authenticated request checks its token with it.
_is_token = _TOKEN.fullmatch
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

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


def missing_token_error(config: WxConfig) -> InvalidSession:
    """The 401 for a request without a token; it names the header to use."""
    header = config.token_headers[0]
    hint = ""
    if "-" in header:
        hint = (
            f" (a '{header.replace('-', '_')}' header with an underscore is dropped by most"
            f" servers and proxies; send '{header}' with a hyphen)"
        )
    return InvalidSession(f"No session token: send it in the '{header}' header{hint}.")


def pick_token(values: Sequence[str]) -> Optional[str]:
    """Choose the token from the values of every token header present.

    Servers join repeated headers with commas, so each value may hold several. Empty values
    count as absent; different values are a conflict (``400``); a value that cannot be one
    of our tokens is an invalid session (``401``), so a client logs in again.
    """
    if len(values) == 1:
        value = values[0]
        if 0 < len(value) <= MAX_TOKEN_LENGTH and _is_token(value):
            return value
    token: Optional[str] = None
    for value in values:
        for part in value.split(","):
            part = part.strip(" \t")
            if not part:
                continue
            if token is None:
                token = part
            elif part != token:
                raise BadRequest("The request names two different session tokens.")
    if token is None:
        return None
    if len(token) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
        check_text(token, "The session token")
        raise InvalidSession("The session token is malformed; log in again.")
    return token


def check_text(value: str, what: str) -> str:
    """``value`` unchanged, or ``400`` when it cannot be encoded as UTF-8.

    A string from a request can hold a lone surrogate (``"\\ud800"`` in a JSON body, or a
    server that decodes bytes with ``surrogateescape``) that passes every other check and
    fails later, wherever it is first encoded: hashing, logging, the call to WeChat. ``what``
    names the value in the message (``"The login code"``); the value itself is never shown.
    """
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"{what} is not valid Unicode text.") from None
    return value


def check_code(value: Any) -> str:
    """A login code as the client sent it, or ``400``: present, a string, at most
    :data:`MAX_CODE_LENGTH` characters, encodable (:func:`check_text`), without control
    characters."""
    if value is None:
        raise BadRequest('The login code is missing: send {"code": "..."} from wx.login().')
    if not isinstance(value, str):
        raise BadRequest("The login code must be a string.")
    if not value:
        raise BadRequest("The login code is empty.")
    if len(value) > MAX_CODE_LENGTH:
        raise BadRequest("The login code is too long.")
    if _CONTROL.search(value):
        raise BadRequest("The login code contains control characters.")
    checked: str = check_text(value, "The login code")
    # Every platform's codes are printable ASCII (WeChat's: 32 letters and digits). Anything
    # else (a header's bytes read as Latin-1, say) is refused here rather than spent on a
    # call to WeChat that can only fail.
    if not checked.isascii() or not checked.isprintable():
        raise BadRequest("The login code has characters no login code has.")
    return checked


def _code_from_fields(fields: Mapping[str, Any]) -> str:
    code = fields.get("code")
    alias = fields.get("wxCode")
    if code is not None and alias is not None and code != alias:
        raise BadRequest("The request names two different login codes.")
    return check_code(code if code is not None else alias)


def _codes_from_fields(fields: Mapping[str, Any]) -> Tuple[str, Optional[str]]:
    anonymous = fields.get("anonymous_code") or None
    if anonymous is not None:
        try:
            anonymous = check_code(anonymous)
        except BadRequest:
            raise BadRequest("The anonymous_code is not a valid login code.") from None
    return _code_from_fields(fields), anonymous


def _single_values(pairs: Mapping[str, List[str]]) -> Dict[str, str]:
    values: Dict[str, str] = {}
    for name, items in pairs.items():
        if len(set(items)) > 1:
            raise BadRequest(f"The field '{name}' is given more than once.")
        values[name] = items[0]
    return values


#: What the login answers tell a client whose body is JSON under another content type.
SEND_JSON = "Content-Type: application/json"


def login_code_from_body(content_type: Optional[str], body: bytes) -> str:
    """Read the login code from a JSON or form body (see :func:`login_from_body`)."""
    return login_from_body(content_type, body)[0]


def login_from_body(content_type: Optional[str], body: bytes) -> Tuple[str, Optional[str]]:
    """Read the login code (``code``, or its alias ``wxCode``) and Douyin's
    ``anonymous_code`` (``None`` when absent; checked as a code is) from a JSON or form
    body.

    ``content_type`` is the request's ``Content-Type`` (``None`` or empty: JSON). Every way
    the body can fail to parse, nesting deep enough to exhaust the parser's recursion
    included, is a ``400``; so is a body that is JSON under another content type (curl's
    ``-d '{"code": ...}'`` sends it as a form), whose message names the header to send. A
    content type we do not read is a ``415``.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if not body.strip():
        raise BadRequest('The login request has no body: send {"code": "..."}.')
    if media_type in ("application/json", "") or media_type.endswith("+json"):
        return _codes_from_fields(_json_object(body))
    if body.lstrip()[:1] in (b"{", b"["):
        # No form field or other supported body starts with a bracket: this is JSON.
        raise BadRequest(
            "The login body looks like JSON but its Content-Type is not JSON (curl -d sends"
            f" a form): send it with {SEND_JSON}."
        )
    if media_type == "application/x-www-form-urlencoded":
        try:
            text = body.decode("utf-8")
            pairs = parse_qs(text, keep_blank_values=True, strict_parsing=False, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("The login form is not valid UTF-8.") from None
        return _codes_from_fields(_single_values(pairs))
    raise UnsupportedMediaType(
        f"Send the login code as JSON with {SEND_JSON},"
        " or as a form (application/x-www-form-urlencoded)."
    )


def _unique_members(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    """A JSON object's members, ``400`` for a name given twice with different values (as a
    form's ``code=a&code=b`` is): which one a reader takes is a parser's choice, not the
    client's."""
    members: Dict[str, Any] = {}
    for name, value in pairs:
        if name in members and members[name] != value:
            raise BadRequest(f"The field '{name}' is given more than once.")
        members[name] = value
    return members


def _json_object(body: bytes) -> Mapping[str, Any]:
    try:
        data = bounded_json.loads(body.decode("utf-8"), object_pairs_hook=_unique_members)
    # Nesting past bounded_json.MAX_DEPTH is a ValueError too (never a RecursionError).
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The login body is not valid UTF-8 JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("The login body must be a JSON object.")
    return data


def login_code_from_query(query_string: Union[str, bytes]) -> str:
    """Read the login code from a ``GET`` query string (only with ``allow_get_login``)."""
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    try:
        pairs = parse_qs(query_string, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The query string is not valid UTF-8.") from None
    return _code_from_fields(_single_values(pairs))


def check_login_method(method: str, config: WxConfig, wafer: bool = False) -> None:
    """Raise ``405`` unless the login path accepts ``method``.

    A Wafer login (``wafer``) may use ``GET`` without ``allow_get_login``: the Wafer client
    logs in with ``GET`` by default, and its code travels in a header, not in the URL (see
    :func:`~._routing.login_methods`). The message names the methods and the path.
    """
    allowed = login_methods(config, wafer)
    if method not in allowed:
        raise MethodNotAllowed(
            f"Log in with {' or '.join(allowed)} {config.login_path}.",
            headers=[("Allow", ", ".join(allowed))],
        )


def check_logout_method(method: str) -> None:
    """Raise ``405`` unless ``method`` is ``POST``."""
    if method != "POST":
        raise MethodNotAllowed("Log out with POST.", headers=[("Allow", "POST")])


def body_length(content_length: Optional[str], config: WxConfig) -> Optional[int]:
    """Validate a ``Content-Length`` before reading: ``None`` when absent (chunked)."""
    if content_length is None or content_length == "":
        return None
    # isdigit() alone also accepts "²" and other digits that int() refuses.
    if not (content_length.isascii() and content_length.isdigit()):
        raise BadRequest("The Content-Length header is malformed.")
    length = int(content_length)
    if length > config.max_body_bytes:
        raise BadRequest(f"The login body is larger than {config.max_body_bytes} bytes.")
    return length


def body_too_large(config: WxConfig) -> BadRequest:
    """The error for a body that grows past the limit while it is read."""
    return BadRequest(f"The login body is larger than {config.max_body_bytes} bytes.")
