"""The failures the fake WeChat can be told to produce, and the reply each one makes.

A fault replaces the whole answer to one request (``"slow"`` only delays a normal one). This
module decides what each fault sends; the HTTP server acts out the parts that happen on the
socket (a short body, a drip, a dropped connection). :meth:`WeChatModel.inject
<wxmiddleware.testing.model.WeChatModel.inject>` documents every kind and its parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Callable, Dict, FrozenSet, Mapping, Optional, Tuple, Union

from ._replies import Reply, error_body, json_bytes

__all__ = ["FAULTS", "Fault", "fault_reply", "make_fault"]

# The keyword parameters each fault accepts, and the type each parameter must have.
_FAULT_PARAMS: Dict[str, FrozenSet[str]] = {
    "errcode": frozenset({"errcode", "errmsg"}),
    "http_status": frozenset({"status"}),
    "html": frozenset(),
    "truncated": frozenset(),
    "huge": frozenset({"size"}),
    "drip": frozenset({"interval", "length"}),
    "slow": frozenset({"delay"}),
    "close": frozenset(),
    "no_openid": frozenset(),
    "invalid_json": frozenset(),
}
_PARAM_TYPES: Dict[str, Union[type, Tuple[type, ...]]] = {
    "errcode": int,
    "errmsg": str,
    "status": int,
    "size": int,
    "length": int,
    "interval": (int, float),
    "delay": (int, float),
}

FAULTS: Tuple[str, ...] = tuple(_FAULT_PARAMS)
"""The fault kinds :meth:`FakeWeChat.inject <wxmiddleware.testing.FakeWeChat.inject>` accepts."""

_HTML_PAGE = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
    "<body><center><h1>{title}</h1></center><hr><center>nginx</center></body></html>\n"
)
_TRUNCATED_BODY = b'{"openid": "o'
_TRUNCATED_LENGTH = 100  # the Content-Length claimed for it


@dataclass(frozen=True)
class Fault:
    """One queued fault: its ``kind`` (one of :data:`FAULTS`) and its parameters.

    Each parameter matters to one kind only: ``errcode``/``errmsg`` (``"errcode"``),
    ``status`` (``"http_status"``), ``size`` in bytes (``"huge"``), ``interval`` in seconds
    and ``length`` in bytes (``"drip"``), ``delay`` in seconds (``"slow"``).
    """

    kind: str
    errcode: int = -1
    errmsg: Optional[str] = None
    status: int = 500
    size: int = 5 * 1024 * 1024
    interval: float = 0.5
    length: int = 128
    delay: float = 10.0

    @property
    def replaces_answer(self) -> bool:
        """Whether the fault answers instead of the API (all but ``"slow"``)."""
        return self.kind != "slow"

    @property
    def wait(self) -> float:
        """Seconds to wait before answering: ``delay`` for ``"slow"``, else none."""
        return self.delay if self.kind == "slow" else 0.0


def make_fault(kind: str, params: Mapping[str, Any]) -> Fault:
    """Check a fault's kind, parameter names, types and values; ``ValueError`` if wrong."""
    if kind not in _FAULT_PARAMS:
        raise ValueError(f"unknown fault {kind!r}; known faults: {', '.join(FAULTS)}")
    unexpected = sorted(set(params) - _FAULT_PARAMS[kind])
    if unexpected:
        raise ValueError(f"fault {kind!r} takes no parameter {', '.join(unexpected)}")
    if kind == "errcode" and "errcode" not in params:
        raise ValueError("fault 'errcode' needs errcode=<int>")
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, _PARAM_TYPES[name]):
            raise ValueError(f"fault parameter {name} has the wrong type: {value!r}")
    fault = Fault(kind, **params)
    if not 400 <= fault.status <= 599:
        raise ValueError(f"status must be an HTTP error status (400-599), got {fault.status}")
    if min(fault.size, fault.length) < 1 or min(fault.interval, fault.delay) < 0:
        raise ValueError("size and length must be positive, interval and delay not negative")
    return fault


def fault_reply(
    fault: Fault, *, decoy_openid: str, session_key_factory: Callable[[], str]
) -> Optional[Reply]:
    """The reply that takes the place of the API's answer; ``None`` drops the connection.

    Success-shaped bodies (``"huge"``, ``"drip"``, ``"invalid_json"``) name ``decoy_openid``
    and, where whole, a session_key from ``session_key_factory``. Every body is
    ``text/plain``, as jscode2session's are, except the HTML pages.
    """
    kind = fault.kind
    if kind == "errcode":
        return Reply(200, "text/plain", error_body(fault.errcode, fault.errmsg))
    if kind == "http_status":
        title = f"{fault.status} {_phrase(fault.status)}".strip()
        return Reply(fault.status, "text/html", _HTML_PAGE.format(title=title).encode())
    if kind == "html":
        page = _HTML_PAGE.format(title="系统繁忙 请稍后再试")  # "system busy, try again later"
        return Reply(200, "text/html; charset=utf-8", page.encode("utf-8"))
    if kind == "truncated":
        return Reply(
            200, "text/plain", _TRUNCATED_BODY, declared_length=_TRUNCATED_LENGTH, close=True
        )
    if kind in ("huge", "drip"):
        answer = {"session_key": session_key_factory(), "openid": decoy_openid}
        if kind == "huge":
            # close: the client may stop reading half way.
            return Reply(200, "text/plain", _padded_body(answer, fault.size), close=True)
        body = _padded_body(answer, fault.length)
        return Reply(200, "text/plain", body, drip_interval=fault.interval, close=True)
    if kind == "no_openid":
        return Reply(200, "text/plain", b"{}")
    if kind == "invalid_json":
        return Reply(200, "text/plain", f'{{"openid": "{decoy_openid}" "session_key": }}'.encode())
    if kind == "close":
        return None
    raise ValueError(f"fault {kind!r} does not replace the answer")


def _padded_body(answer: Mapping[str, str], size: int) -> bytes:
    """A success-shaped JSON body of exactly ``size`` bytes (a prefix if ``size`` is tiny)."""
    bare = json_bytes({**answer, "padding": ""})
    padded = json_bytes({**answer, "padding": "x" * max(0, size - len(bare))})
    return padded[:size]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
