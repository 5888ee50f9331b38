"""What the core reads out of a request: the token, the login code, the method, the body's
length (the view itself is :mod:`._view`)."""

from __future__ import annotations

import re
from typing import (
    Any,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)
from urllib.parse import parse_qs

from .. import _json as bounded_json
from ..config import WxConfig
from ..errors import BadRequest, InvalidSession, MethodNotAllowed, UnsupportedMediaType
from ..session import MAX_TOKEN_LENGTH
from ._routing import login_methods

MAX_CODE_LENGTH = 256
#: Whether a string is one of our tokens' shape: URL-safe base64 of 1 to MAX_TOKEN_LENGTH
#: characters (a match, or ``None``). The whole rule in one pattern: the bounded repeat also
#: checks the length, and costs less than a separate len() check.
is_token = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_TOKEN_LENGTH}}}").fullmatch
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
    if not is_token(token):
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
