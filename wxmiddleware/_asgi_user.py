"""What ``scope["user"]`` and ``scope["auth"]`` hold: Starlette's user and credentials shape.

Starlette's ``AuthenticationMiddleware`` puts a ``BaseUser`` and ``AuthCredentials`` there;
``request.user``, ``request.auth`` and ``requires("authenticated")`` read them. These two
classes have the same attributes without importing Starlette.
"""

from __future__ import annotations

from typing import Iterable, Optional

from .session import WxSession

__all__ = ["WxCredentials", "WxUser"]


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
