"""What the fake WeChat sends back: the reply value and the bodies of WeChat's error answers."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

JSON = "application/json"
"""The Content-Type of the fake's own answers (unknown paths, control endpoints)."""

# Messages WeChat sends for the errcodes a client is likely to meet; used when an answer (or an
# injected errcode fault) names no errmsg.
ERRMSGS: Dict[int, str] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40013: "invalid appid",
    40029: "invalid code",
    40097: "invalid args",
    40125: "invalid appsecret",
    40163: "code been used",
    40226: "invalid user",
    41001: "access_token missing",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    45011: "api minute-quota reach limit",
    47001: "data format error",
    87009: "invalid signature",
}


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, and how the server puts it on the wire.

    Most replies are a plain ``status``, ``content_type`` and ``body``. The faults that break
    the transport set the rest: ``declared_length`` claims a Content-Length other than the
    body's (a truncated answer), ``drip_interval`` sends the body one byte every that many
    seconds, and ``close`` ends the connection after the answer instead of keeping it alive.
    """

    status: int
    content_type: str
    body: bytes
    declared_length: Optional[int] = None
    drip_interval: Optional[float] = None
    close: bool = False
    #: Headers beside Content-Type and Content-Length (a sealed answer's ``Wechatmp-*``).
    headers: Tuple[Tuple[str, str], ...] = ()


def json_bytes(value: object) -> bytes:
    """``value`` as compact UTF-8 JSON, non-ASCII characters unescaped as WeChat sends them."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def error_body(errcode: int, errmsg: Optional[str] = None) -> bytes:
    """WeChat's ``{"errcode", "errmsg"}`` body; without ``errmsg``, WeChat's message and a rid."""
    if errmsg is None:
        errmsg = f"{ERRMSGS.get(errcode, 'system error')}, rid: {_rid()}"
    return json_bytes({"errcode": errcode, "errmsg": errmsg})


def _rid() -> str:
    # Real errmsgs end in a request id, e.g. "invalid code, rid: 6581f0a2-3c1b2d4e-5f6a7b8c".
    return "-".join(secrets.token_hex(4) for _ in range(3))


class WeChatError(Exception):
    """A refusal WeChat answers as HTTP 200 ``{"errcode", "errmsg"}`` (see :func:`error_body`)."""

    def __init__(self, errcode: int, errmsg: Optional[str] = None) -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.errmsg = errmsg
