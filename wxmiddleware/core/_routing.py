"""Which kind of request this is, decided once per request from precomputed tables; and
which methods the login path accepts."""

from __future__ import annotations

import enum
import re
from typing import Dict, List, Tuple, Union

from ..config import WxConfig
from ..errors import NotFound

# Percent-escapes that a framework may decode into a separator after we matched the path.
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|00)", re.IGNORECASE)


class RequestKind(enum.Enum):
    """What the middleware does with a request."""

    LOGIN = "login"
    LOGOUT = "logout"
    #: The login or logout path spelled with (or without) a trailing slash: answered with
    #: a ``404`` that names the real path, not a ``401`` about a missing token.
    NEAR_LOGIN = "near_login"
    NEAR_LOGOUT = "near_logout"
    PUBLIC = "public"
    OPTIONAL = "optional"
    PROTECTED = "protected"


def login_methods(config: WxConfig, wafer: bool = False) -> Tuple[str, ...]:
    """The methods the login path accepts: ``POST``, and ``GET`` with ``allow_get_login``
    or for a Wafer login (``wafer``: its code travels in a header, not in the URL).

    ``HEAD`` is never one: it is a safe method (RFC 9110, section 9.2.1), and a login spends
    a one-time code and makes a session.
    """
    return ("POST", "GET") if config.allow_get_login or wafer else ("POST",)


def near_miss_error(kind: RequestKind, config: WxConfig) -> NotFound:
    """The ``404`` for a near miss of the login or logout path (``kind`` is
    :attr:`RequestKind.NEAR_LOGIN` or :attr:`RequestKind.NEAR_LOGOUT`): it names the method
    and path that work, where a ``401`` about a missing token would mislead."""
    if kind is RequestKind.NEAR_LOGIN:
        methods = " or ".join(login_methods(config))
        return NotFound(f"This is not the login path: log in with {methods} {config.login_path}.")
    return NotFound(f"This is not the logout path: log out with POST {config.logout_path}.")


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
    route unauthenticated. The login and logout paths with a trailing slash added (or
    removed, when the configured path has one) are :attr:`RequestKind.NEAR_LOGIN` and
    :attr:`RequestKind.NEAR_LOGOUT`, unless ``public_paths``/``optional_paths`` name them.
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
        for path, near in (
            (config.login_path, RequestKind.NEAR_LOGIN),
            (config.logout_path, RequestKind.NEAR_LOGOUT),
        ):
            other = path[:-1] if path.endswith("/") else path + "/"
            # Only a path that would need a session: one the app configured keeps its kind.
            if other and self.classify(other) is _PROTECTED:
                self._exact[other] = near

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
