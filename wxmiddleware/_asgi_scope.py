"""The ASGI scope as the app receives it, and the header names as servers send them.

``scope["user"]`` and ``scope["auth"]`` take Starlette's shape: its
``AuthenticationMiddleware`` puts a ``BaseUser`` and ``AuthCredentials`` there, and
``request.user``, ``request.auth`` and ``requires("authenticated")`` read them. These two
classes have the same attributes without importing Starlette.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

from .session import WxSession

__all__ = ["WxCredentials", "WxUser", "header_spellings", "with_session"]


class WxUser:
    """``scope["user"]``: the WeChat user, as Starlette's ``request.user`` expects one.

    It has the attributes of Starlette's ``BaseUser`` (``is_authenticated``,
    ``display_name``, ``identity``), plus ``openid``, ``unionid`` and ``session``. On an
    optional path without a valid session it is anonymous: ``is_authenticated`` is
    ``False``, ``identity`` and ``display_name`` are ``""``, the rest ``None``.
    """

    __slots__ = ("session",)

    def __init__(self, session: Optional[WxSession]) -> None:
        self.session = session

    def __repr__(self) -> str:
        return f"WxUser(openid={self.openid!r})"

    @property
    def is_authenticated(self) -> bool:
        """Whether the request carries a valid session."""
        return self.session is not None

    @property
    def openid(self) -> Optional[str]:
        """The user's openid in this mini-program."""
        return None if self.session is None else self.session.openid

    @property
    def unionid(self) -> Optional[str]:
        """The unionid, when the mini-program is bound to an open-platform account."""
        return None if self.session is None else self.session.unionid

    @property
    def identity(self) -> str:
        """The openid (``""`` when anonymous)."""
        return "" if self.session is None else self.session.openid

    @property
    def display_name(self) -> str:
        """The openid too: a login tells nothing more presentable about the user."""
        return self.identity


class WxCredentials:
    """``scope["auth"]``: ``scopes`` is ``["authenticated"]`` with a session, else empty.

    Starlette's ``requires("authenticated")`` checks it.
    """

    __slots__ = ("scopes",)

    def __init__(self, scopes: Iterable[str] = ()) -> None:
        self.scopes = scopes if type(scopes) is list else list(scopes)

    def __repr__(self) -> str:
        return f"WxCredentials({self.scopes!r})"


def with_session(scope: Dict[str, Any], session: Optional[WxSession]) -> Dict[str, Any]:
    """A copy of ``scope`` with the session's keys, ``user`` and ``auth`` (the README's
    "What your app sees"); ``session`` is ``None`` on an optional path without one."""
    # A copy: the ASGI spec asks middleware to leave the scope it was given unchanged.
    # copy() and item assignment cost half what a {**scope, ...} literal does.
    attached = scope.copy()
    if session is None:
        attached["wxmiddleware.session"] = None
        attached["wxmiddleware.openid"] = None
        attached["wxmiddleware.session_key"] = None
        attached["wxmiddleware.unionid"] = None
        attached["user"] = WxUser(None)
        attached["auth"] = WxCredentials([])
        return attached
    attached["wxmiddleware.session"] = session
    attached["wxmiddleware.openid"] = session.openid
    attached["wxmiddleware.session_key"] = session.session_key
    attached["wxmiddleware.unionid"] = session.unionid
    attached["user"] = WxUser(session)
    attached["auth"] = WxCredentials(["authenticated"])
    return attached


def header_spellings(key: str) -> List[str]:
    """``key`` with each of its hyphens also written as an underscore."""
    spellings = [""]
    for index, part in enumerate(key.split("-")):
        joints = ("",) if index == 0 else ("-", "_")
        spellings = [done + joint + part for done in spellings for joint in joints]
    return spellings
