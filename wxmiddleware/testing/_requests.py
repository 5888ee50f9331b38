"""The requests the fake WeChat receives: the call, where it goes, how its query and body read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import parse_qsl, urlsplit

from ..wechat._paths import (
    CHECK_ENCRYPTED_MSG_PATH,
    CHECK_SESSION_PATH,
    COMPONENT_JSCODE2SESSION_PATH,
    JSCODE2SESSION_PATH,
    PHONE_NUMBER_PATH,
    PLUGIN_OPENPID_PATH,
    RESET_SESSION_KEY_PATH,
    STABLE_TOKEN_PATH,
    TOKEN_PATH,
    USER_ENCRYPT_KEY_PATH,
)
from .faults import Fault


@dataclass(frozen=True)
class RecordedCall:
    """One request the fake received (control endpoints under ``/fake/`` are not recorded).

    ``query`` holds the decoded ``(name, value)`` pairs in the order they were sent, repeats
    included, so a test can see exactly what a client put on the wire; ``raw_query`` is the
    query string before decoding.
    """

    method: str
    path: str
    query: List[Tuple[str, str]] = field(hash=False)
    raw_query: str
    #: The request body as sent (the JSON of a POST), shown by neither ``repr`` nor ``str``.
    body: bytes = field(default=b"", repr=False)
    #: The request's headers, names in lower case (API security reads its ``Wechatmp-*``).
    headers: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(
        cls,
        method: str,
        target: str,
        body: bytes = b"",
        headers: Optional[Mapping[str, str]] = None,
    ) -> RecordedCall:
        """The call for a request line's ``target`` (``"/path?query"``), its body and its
        headers (any case)."""
        parts = urlsplit(target)
        query = parse_qsl(parts.query, keep_blank_values=True)
        named = {name.lower(): value for name, value in (headers or {}).items()}
        return cls(method, parts.path, query, parts.query, body, named)


_JSON_UTF8 = "application/json; encoding=utf-8"  # what WeChat's server APIs send
API_ROUTES: Dict[str, Tuple[str, str]] = {
    JSCODE2SESSION_PATH: ("GET", "text/plain"),
    COMPONENT_JSCODE2SESSION_PATH: ("GET", "text/plain"),
    TOKEN_PATH: ("GET", _JSON_UTF8),
    STABLE_TOKEN_PATH: ("POST", _JSON_UTF8),
    CHECK_SESSION_PATH: ("GET", _JSON_UTF8),
    PHONE_NUMBER_PATH: ("POST", _JSON_UTF8),
    RESET_SESSION_KEY_PATH: ("GET", _JSON_UTF8),
    USER_ENCRYPT_KEY_PATH: ("POST", _JSON_UTF8),
    CHECK_ENCRYPTED_MSG_PATH: ("POST", _JSON_UTF8),
    PLUGIN_OPENPID_PATH: ("POST", _JSON_UTF8),
}
"""Each API path the fake serves: ``(the method it answers, the Content-Type of its answers)``."""


@dataclass(frozen=True)
class Arrival:
    """What the fake decided when a call arrived: the ``fault`` it drew (if any) and the
    seconds to ``wait`` before answering (the latency, and a ``"slow"`` fault's delay)."""

    call: RecordedCall
    fault: Optional[Fault] = None
    wait: float = 0.0


def json_object(body: bytes) -> Optional[Dict[str, Any]]:
    """A request's JSON object body, or ``None`` for anything else."""
    try:
        value = json.loads(body)
    except ValueError:  # bad JSON and bad UTF-8 alike
        return None
    return value if isinstance(value, dict) else None


def single_values(query: Sequence[Tuple[str, str]]) -> Callable[[str], Optional[str]]:
    """Look a parameter up; one sent more than once counts as missing, as an invalid value
    would, so that a client that builds its query by string concatenation is caught."""
    values: Dict[str, List[str]] = {}
    for name, value in query:
        values.setdefault(name, []).append(value)

    def single(name: str) -> Optional[str]:
        found = values.get(name, [])
        return found[0] if len(found) == 1 else None

    return single
