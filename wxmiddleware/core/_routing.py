"""Which kind of request this is, decided once per request from precomputed tables."""

from __future__ import annotations

import enum
import re
from typing import Dict, List, Tuple, Union

from ..config import WxConfig

# Percent-escapes that a framework may decode into a separator after we matched the path.
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|00)", re.IGNORECASE)


class RequestKind(enum.Enum):
    """What the middleware does with a request."""

    LOGIN = "login"
    LOGOUT = "logout"
    PUBLIC = "public"
    OPTIONAL = "optional"
    PROTECTED = "protected"


# Module constants: reading an enum member through its class costs tens of nanoseconds.
_PUBLIC = RequestKind.PUBLIC
_OPTIONAL = RequestKind.OPTIONAL
_PROTECTED = RequestKind.PROTECTED


def _is_clean(path: str, raw_path: Union[str, bytes, None]) -> bool:
    if "\\" in path or any(segment in (".", "..") for segment in path.split("/")):
        return False
    if isinstance(raw_path, bytes):
        raw_path = raw_path.decode("latin-1")
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

    def classify(self, path: str, raw_path: Union[str, bytes, None] = None) -> RequestKind:
        """Decide the kind of a request from its decoded path and, when known, its raw path
        (``bytes`` as ASGI gives it are read as Latin-1, and only when it matters)."""
        kind = self._exact.get(path)
        if kind is None:
            for prefix, prefix_kind in self._prefixes:
                if path.startswith(prefix):
                    kind = prefix_kind
                    break
            else:
                return _PROTECTED
        if (kind is _PUBLIC or kind is _OPTIONAL) and not _is_clean(path, raw_path):
            return _PROTECTED
        return kind
