"""The decision core: no I/O, shared unchanged by the WSGI and ASGI middleware.

It decides what kind of request this is, extracts and validates the token, parses the login
body, runs the login as a generator of *effects* that an adapter performs with its own I/O
(sync or async), and builds every JSON answer.
"""

from __future__ import annotations

import enum
import json
import logging
import re
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Generator,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)
from urllib.parse import parse_qs

from ._flows import run_flow, run_flow_async
from .config import WAFER_SKEY_HEADER, WxConfig
from .crypto import decrypt_data
from .errors import (
    BadRequest,
    InvalidCode,
    InvalidSession,
    MethodNotAllowed,
    UnsupportedMediaType,
    UpstreamTimeout,
    WxError,
)
from .session import (
    MAX_TOKEN_LENGTH,
    WxSession,
    code_key,
    new_token,
    seal_token,
    unseal_token,
)
from .stores.base import PENDING
from .wechat._protocol import CodeSession

__all__ = [
    "ClaimCode",
    "ExchangeCode",
    "HeaderLookup",
    "LoadSession",
    "LoginFlow",
    "ReleaseCode",
    "RequestKind",
    "Response",
    "Router",
    "SaveSession",
    "WaferLogin",
    "Wait",
    "error_response",
    "login_code_from_body",
    "login_code_from_query",
    "login_flow",
    "logout_response",
    "missing_token_error",
    "pick_token",
    "run_login",
    "run_login_async",
    "wafer_error",
    "wafer_login",
    "wafer_login_response",
    "wafer_userinfo",
]

MAX_CODE_LENGTH = 256
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Percent-escapes that a framework may decode into a separator after we matched the path.
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|00)", re.IGNORECASE)
# How often a login waiting on a concurrent login with the same code looks again.
PENDING_POLL_SECONDS = 0.025

# The login headers of Tencent's Wafer client SDK (wafer2-client-sdk, lib/login.js): the code
# from wx.login(), and the user info from wx.getUserInfo() with its iv.
WAFER_CODE_HEADER = "X-WX-Code"
WAFER_ENCRYPTED_DATA_HEADER = "X-WX-Encrypted-Data"
WAFER_IV_HEADER = "X-WX-IV"

logger = logging.getLogger("wxmiddleware")

#: ``header(name)``: a request header's value (repeats joined with commas), or ``None``.
HeaderLookup = Callable[[str], Optional[str]]


class RequestKind(enum.Enum):
    """What the middleware does with a request."""

    LOGIN = "login"
    LOGOUT = "logout"
    PUBLIC = "public"
    OPTIONAL = "optional"
    PROTECTED = "protected"


@dataclass(frozen=True)
class Response:
    """An answer the middleware gives itself, independent of WSGI or ASGI."""

    status: int
    headers: Tuple[Tuple[str, str], ...]
    body: bytes

    @property
    def status_line(self) -> str:
        """The WSGI status line, e.g. ``"401 Unauthorized"``."""
        return f"{self.status} {HTTPStatus(self.status).phrase}"


def _is_clean(path: str, raw_path: Optional[str]) -> bool:
    if "\\" in path or any(segment in (".", "..") for segment in path.split("/")):
        return False
    return raw_path is None or "%" not in raw_path or not _ENCODED_SEPARATOR.search(raw_path)


class Router:
    """Classifies a request path once per request with precomputed tables.

    Matching is exact, segment by segment. ``public_paths``/``optional_paths`` entries ending
    in ``/*`` match their prefix and everything below it. A path with ``.`` or ``..``
    segments, a backslash, or an encoded ``/``, ``\\`` or NUL in the raw path is never
    public or optional: a framework that normalises it later must not land on a protected
    route unauthenticated.
    """

    def __init__(self, config: WxConfig) -> None:
        self._exact: Dict[str, RequestKind] = {}
        self._prefixes: List[Tuple[str, RequestKind]] = []
        for paths, kind in (
            (config.optional_paths, RequestKind.OPTIONAL),
            (config.public_paths, RequestKind.PUBLIC),
        ):
            for path in paths:
                if path.endswith("/*"):
                    base = path[:-2]
                    self._exact[base or "/"] = kind
                    self._prefixes.append((base + "/", kind))
                else:
                    self._exact[path] = kind
        self._exact[config.login_path] = RequestKind.LOGIN
        self._exact[config.logout_path] = RequestKind.LOGOUT
        # Longest prefix first, so a narrower rule wins over a broader one.
        self._prefixes.sort(key=lambda item: len(item[0]), reverse=True)

    def classify(self, path: str, raw_path: Optional[str] = None) -> RequestKind:
        """Decide the kind of a request from its decoded path and, when known, its raw path."""
        kind = self._exact.get(path)
        if kind is None:
            for prefix, prefix_kind in self._prefixes:
                if path.startswith(prefix):
                    kind = prefix_kind
                    break
            else:
                return RequestKind.PROTECTED
        if (kind is RequestKind.PUBLIC or kind is RequestKind.OPTIONAL) and not _is_clean(
            path, raw_path
        ):
            return RequestKind.PROTECTED
        return kind


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
        if 0 < len(value) <= MAX_TOKEN_LENGTH and _TOKEN.fullmatch(value):
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
        raise InvalidSession("The session token is malformed; log in again.")
    return token


def _check_code(value: Any) -> str:
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
    return value


def _code_from_fields(fields: Mapping[str, Any]) -> str:
    code = fields.get("code")
    alias = fields.get("wxCode")
    if code is not None and alias is not None and code != alias:
        raise BadRequest("The request names two different login codes.")
    return _check_code(code if code is not None else alias)


def _single_values(pairs: Mapping[str, List[str]]) -> Dict[str, str]:
    values: Dict[str, str] = {}
    for name, items in pairs.items():
        if len(set(items)) > 1:
            raise BadRequest(f"The field '{name}' is given more than once.")
        values[name] = items[0]
    return values


def login_code_from_body(content_type: Optional[str], body: bytes) -> str:
    """Read the login code from a JSON or form body (``code``, or its alias ``wxCode``)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if not body.strip():
        raise BadRequest('The login request has no body: send {"code": "..."}.')
    if media_type in ("application/json", "") or media_type.endswith("+json"):
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("The login body is not valid UTF-8 JSON.") from None
        if not isinstance(data, dict):
            raise BadRequest("The login body must be a JSON object.")
        return _code_from_fields(data)
    if media_type == "application/x-www-form-urlencoded":
        try:
            text = body.decode("utf-8")
            pairs = parse_qs(text, keep_blank_values=True, strict_parsing=False, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("The login form is not valid UTF-8.") from None
        return _code_from_fields(_single_values(pairs))
    raise UnsupportedMediaType(
        "Send the login code as application/json or application/x-www-form-urlencoded."
    )


def login_code_from_query(query_string: str) -> str:
    """Read the login code from a ``GET`` query string (only with ``allow_get_login``)."""
    try:
        pairs = parse_qs(query_string, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The query string is not valid UTF-8.") from None
    return _code_from_fields(_single_values(pairs))


def check_login_method(method: str, config: WxConfig, wafer: bool = False) -> None:
    """Raise ``405`` unless the login path accepts ``method``.

    A Wafer login (``wafer``) may use ``GET`` without ``allow_get_login``: the Wafer client
    logs in with ``GET`` by default, and its code travels in a header, not in the URL.
    """
    allowed = ("POST", "GET") if config.allow_get_login or wafer else ("POST",)
    if method not in allowed:
        raise MethodNotAllowed(
            f"Log in with {' or '.join(allowed)}.", headers=[("Allow", ", ".join(allowed))]
        )


@dataclass(frozen=True)
class WaferLogin:
    """A login from a Wafer client: the code, and the user info it sent encrypted, if any."""

    code: str = field(repr=False)
    encrypted_data: Optional[str] = field(default=None, repr=False)
    iv: Optional[str] = field(default=None, repr=False)


def wafer_login(config: WxConfig, header: HeaderLookup) -> Optional[WaferLogin]:
    """Read a Wafer login from its headers; ``None`` when the request is not one.

    A login request is a Wafer login when ``wafer_compat`` is on and it carries ``X-WX-Code``
    (even empty, which is then refused); its body and query string are not read. The code is
    checked like a body's. ``X-WX-Encrypted-Data`` and ``X-WX-IV`` come together or not at all
    (empty counts as absent), and together stay within ``max_body_bytes``. A comma means the
    header was sent twice (servers join repeats with commas; none of these values holds one).
    """
    if not config.wafer_compat:
        return None
    code = header(WAFER_CODE_HEADER)
    if code is None:
        return None
    encrypted_data = header(WAFER_ENCRYPTED_DATA_HEADER) or None
    iv = header(WAFER_IV_HEADER) or None
    for name, value in (
        (WAFER_CODE_HEADER, code),
        (WAFER_ENCRYPTED_DATA_HEADER, encrypted_data),
        (WAFER_IV_HEADER, iv),
    ):
        if value is not None and "," in value:
            raise BadRequest(f"The {name} header is given more than once.")
    code = _check_code(code)
    if (encrypted_data is None) != (iv is None):
        raise BadRequest(
            f"Send {WAFER_ENCRYPTED_DATA_HEADER} and {WAFER_IV_HEADER} together, or neither."
        )
    if len(encrypted_data or "") + len(iv or "") > config.max_body_bytes:
        raise BadRequest(f"The encrypted user info is larger than {config.max_body_bytes} bytes.")
    return WaferLogin(code, encrypted_data, iv)


def wafer_userinfo(login: WaferLogin, session: WxSession, config: WxConfig) -> Dict[str, Any]:
    """The ``userinfo`` of the answer to a Wafer login, never holding the session_key.

    With encrypted data, it is the user info that data decrypts to under this session's
    session_key, after its watermark proved it was made for our appid; the watermark itself
    is dropped (it is the server's check, and the client's own ``wx.getUserInfo`` result has
    none). Either way ``openId``, and ``unionId`` when known, come from the session: WeChat
    no longer puts them in the encrypted user info, and Wafer clients read
    ``userinfo.openId``. A payload that does not decrypt raises the matching
    :class:`~wxmiddleware.crypto.DecryptError` (``400``, with WeChat's -4100x errcode).
    """
    userinfo: Dict[str, Any] = {}
    if login.encrypted_data is not None and login.iv is not None:
        try:
            userinfo = decrypt_data(session, login.encrypted_data, login.iv, config.appid)
        except ImportError:  # decrypt_data imports cryptography, an optional dependency
            raise WxError(
                "The server cannot decrypt user info.",
                detail="decrypting X-WX-Encrypted-Data needs: pip install 'wxmiddleware[crypto]'",
            ) from None
        userinfo.pop("watermark", None)
    userinfo["openId"] = session.openid
    if session.unionid is not None:
        userinfo["unionId"] = session.unionid
    return userinfo


def wafer_error(config: WxConfig, kind: RequestKind, error: WxError, header: HeaderLookup) -> bool:
    """Whether the answer to ``error`` carries Wafer's ``"code": -1``.

    The Wafer client reads ``code: -1`` on a login as a failure, and on any other request as
    "this session is invalid": it drops its skey, logs in again and retries once, whatever
    the HTTP status (wafer2-client-sdk, lib/request.js). So every error of a Wafer login
    (``X-WX-Code``) gets it, and a request that carried ``X-WX-Skey`` gets it only with a
    ``401``: a ``503`` from a store that is down must not make the client throw away a session
    that is still good. Requests without these headers keep our answers unchanged.
    """
    if not config.wafer_compat:
        return False
    if kind is RequestKind.LOGIN:
        return header(WAFER_CODE_HEADER) is not None
    return error.status == 401 and header(WAFER_SKEY_HEADER) is not None


def check_logout_method(method: str) -> None:
    """Raise ``405`` unless ``method`` is ``POST``."""
    if method != "POST":
        raise MethodNotAllowed("Log out with POST.", headers=[("Allow", "POST")])


def body_length(content_length: Optional[str], config: WxConfig) -> Optional[int]:
    """Validate a ``Content-Length`` before reading: ``None`` when absent (chunked)."""
    if content_length is None or content_length == "":
        return None
    if not content_length.isdigit():
        raise BadRequest("The Content-Length header is malformed.")
    length = int(content_length)
    if length > config.max_body_bytes:
        raise BadRequest(f"The login body is larger than {config.max_body_bytes} bytes.")
    return length


def body_too_large(config: WxConfig) -> BadRequest:
    """The error for a body that grows past the limit while it is read."""
    return BadRequest(f"The login body is larger than {config.max_body_bytes} bytes.")


_JSON_HEADERS = (
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
)


def json_response(
    status: int, payload: Mapping[str, Any], headers: Iterable[Tuple[str, str]] = ()
) -> Response:
    """A JSON answer that no cache keeps."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(
        status,
        (*_JSON_HEADERS, ("Content-Length", str(len(body))), *headers),
        body,
    )


def error_response(error: WxError, wafer: bool = False) -> Response:
    """The JSON answer for any :class:`WxError`: ``{"error", "message"[, "errcode"]}``.

    With ``wafer`` (see :func:`wafer_error`), Wafer's ``"code": -1`` leads the same body.
    """
    payload: Dict[str, Any] = {"code": -1} if wafer else {}
    payload["error"] = error.error
    payload["message"] = error.message
    if error.errcode is not None:
        payload["errcode"] = error.errcode
    headers = list(error.headers)
    if error.status == 401:
        headers.append(("WWW-Authenticate", 'WxSession realm="wxmiddleware"'))
    return json_response(error.status, payload, headers)


def logout_response() -> Response:
    """The answer to a logout: ``204`` with no body."""
    return Response(204, (("Cache-Control", "no-store"),), b"")


def login_response(
    token: str,
    session: WxSession,
    config: WxConfig,
    extra: Optional[Mapping[str, Any]] = None,
    now: Optional[float] = None,
) -> Response:
    """``200 {"3rd_session": TOKEN, "expires_in": SECONDS}`` (plus opt-in fields)."""
    now = time.time() if now is None else now
    payload: Dict[str, Any] = {
        "3rd_session": token,
        "expires_in": max(0, int(min(config.session_ttl, session.expires_at - now))),
    }
    if config.expose_openid:
        payload["openid"] = session.openid
        if session.unionid is not None:
            payload["unionid"] = session.unionid
    if extra:
        for name, value in extra.items():
            payload.setdefault(name, value)
    return json_response(200, payload)


def wafer_login_response(
    token: str, userinfo: Mapping[str, Any], extra: Optional[Mapping[str, Any]] = None
) -> Response:
    """``200 {"code": 0, "data": {"skey": TOKEN, "userinfo": {...}}}``, Wafer's login answer.

    The Wafer client keeps ``data`` and sends ``data.skey`` back in ``X-WX-Skey``; it refuses
    an answer without a ``userinfo``. Fields from ``on_login`` go into ``data``.
    """
    data: Dict[str, Any] = {"skey": token, "userinfo": dict(userinfo)}
    if extra:
        for name, value in extra.items():
            data.setdefault(name, value)
    return json_response(200, {"code": 0, "data": data})


def new_session(reply: CodeSession, config: WxConfig, now: Optional[float] = None) -> WxSession:
    """The session record for a fresh jscode2session reply."""
    now = time.time() if now is None else now
    return WxSession(
        openid=reply.openid,
        session_key=reply.session_key,
        unionid=reply.unionid,
        created_at=now,
        expires_at=now + config.session_max_age,
    )


# Effects the login flow asks its adapter to perform; the adapter sends back the result.
@dataclass(frozen=True)
class ClaimCode:
    """Call ``store.claim_code(code_key, ttl)``; send back its result."""

    code_key: str
    ttl: int


@dataclass(frozen=True)
class ReleaseCode:
    """Call ``store.release_code(code_key)``."""

    code_key: str


@dataclass(frozen=True)
class LoadSession:
    """Call ``store.get(token, idle_ttl)``; send back the session or ``None``."""

    token: str
    idle_ttl: int


@dataclass(frozen=True)
class ExchangeCode:
    """Call WeChat's jscode2session; send back a :class:`CodeSession` (or throw its error)."""

    code: str = ""

    def __repr__(self) -> str:
        return "ExchangeCode(code=...)"


@dataclass(frozen=True)
class SaveSession:
    """Call ``store.save(token, session, idle_ttl, code_key, sealed_token)``."""

    token: str
    session: WxSession
    idle_ttl: int
    code_key: str
    sealed_token: str

    def __repr__(self) -> str:
        return f"SaveSession(openid={self.session.openid!r})"


@dataclass(frozen=True)
class Wait:
    """Sleep this long (in a way that does not block other requests)."""

    seconds: float


Effect = Union[ClaimCode, ReleaseCode, LoadSession, ExchangeCode, SaveSession, Wait]
LoginResult = Tuple[str, WxSession]
LoginFlow = Generator[Effect, Any, LoginResult]


def login_flow(code: str, config: WxConfig) -> LoginFlow:
    """Log in with ``code``; return ``(token, session)``.

    The same code sent again within its lifetime (a client retry, possibly to another worker)
    yields the same session; concurrent duplicates wait for the first one instead of calling
    WeChat again. Errors are raised as :class:`WxError`.
    """
    key = code_key(code)
    # A duplicate waits as long as the first login may take: two attempts and a backoff.
    deadline = time.monotonic() + 2 * (config.connect_timeout + config.read_timeout) + 1
    while True:
        claim = yield ClaimCode(key, config.code_ttl)
        if claim is None:
            break
        if claim == PENDING:
            if time.monotonic() >= deadline:
                raise UpstreamTimeout("A login with this code is still in progress.")
            yield Wait(PENDING_POLL_SECONDS)
            continue
        token = unseal_token(code, claim)
        session = None if token is None else (yield LoadSession(token, config.session_ttl))
        if token is None or session is None:
            raise InvalidCode("This login code was already used; call wx.login() again.")
        return token, session
    try:
        reply = yield ExchangeCode(code)
    except GeneratorExit:
        raise
    except BaseException:  # a cancelled request (asyncio) must release its claim too
        yield ReleaseCode(key)
        raise
    token = new_token()
    session = new_session(reply, config)
    yield SaveSession(token, session, config.session_ttl, key, seal_token(code, token))
    return token, session


def run_login(flow: LoginFlow, perform: Callable[[Effect], Any]) -> LoginResult:
    """Drive a login flow synchronously, performing each effect with ``perform``."""
    return run_flow(flow, perform)


async def run_login_async(
    flow: LoginFlow, perform: Callable[[Effect], Awaitable[Any]]
) -> LoginResult:
    """Drive a login flow asynchronously, awaiting ``perform`` for each effect."""
    return await run_flow_async(flow, perform)


def resolve_config(config: Optional[WxConfig], options: Mapping[str, Any]) -> WxConfig:
    """The middleware's configuration from ``config=`` and/or keyword options."""
    if config is None:
        return WxConfig(**options)
    return config.with_options(**options) if options else config


def log_failure(action: str, error: WxError, subject: str = "") -> None:
    """One log line per failed login/logout/store access, naming its cause, never a secret."""
    # A misconfiguration or an unusable WeChat needs the operator; a busy one, attention;
    # a bad client request, a record.
    if error.status in (500, 502):
        level = logging.ERROR
    elif error.status >= 500:
        level = logging.WARNING
    else:
        level = logging.INFO
    logger.log(
        level,
        "%s failed: %s %s%s%s%s",
        action,
        error.status,
        error.error,
        f" errcode={error.errcode}" if error.errcode is not None else "",
        f" ({error.detail})" if error.detail else "",
        f" {subject}" if subject else "",
    )
