"""The store protocol: one synchronous interface and its asynchronous twin.

Stores receive tokens and hash them where they persist anything (see
:func:`wxmiddleware.session.token_key`). Login codes reach a store only as
:func:`wxmiddleware.session.code_key` plus the token sealed under the code.
Every store raises :class:`wxmiddleware.errors.StoreUnavailable` when its backend fails,
so the middleware can fail closed with a 503.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Protocol, runtime_checkable

from ..session import WxSession

#: What :meth:`SessionStore.claim_code` returns while another request is logging in
#: with the same code.
PENDING = ""


@dataclass(frozen=True)
class SessionInfo:
    """What may be shown about a stored session: never its token or session_key."""

    key_hash: str
    openid: str
    unionid: Optional[str]
    created_at: float
    expires_at: float
    idle_until: float


@runtime_checkable
class SessionStore(Protocol):
    """A synchronous session store (used by :class:`wxmiddleware.WxMiddleware`)."""

    def get(self, token: str, idle_ttl: int) -> Optional[WxSession]:
        """Return the live session for ``token`` and slide its idle timeout, or ``None``."""

    def save(
        self,
        token: str,
        session: WxSession,
        idle_ttl: int,
        code_key: Optional[str] = None,
        sealed_token: Optional[str] = None,
    ) -> None:
        """Store a new session, index it under its openid, and complete a code claim."""

    def delete(self, token: str) -> bool:
        """End one session; ``True`` if it existed."""

    def revoke_all(self, openid: str) -> int:
        """End every session of ``openid``; return how many ended."""

    def sessions_for(self, openid: str) -> List[SessionInfo]:
        """Describe the live sessions of ``openid``."""

    def claim_code(self, code_key: str, ttl: int) -> Optional[str]:
        """Claim a login code for ``ttl`` seconds.

        Returns ``None`` when the caller now owns the code (and must call WeChat, then
        :meth:`save` with ``code_key`` or :meth:`release_code`), :data:`PENDING` while another
        request owns it, or the sealed token of the session an earlier login made from it.
        """

    def release_code(self, code_key: str) -> None:
        """Give up a claim whose login failed, so that a retry may try again."""

    def purge_expired(self) -> int:
        """Delete expired sessions and code records; return how many sessions went."""

    def close(self) -> None:
        """Release connections."""


@runtime_checkable
class AsyncSessionStore(Protocol):
    """The asynchronous twin of :class:`SessionStore` (used by the ASGI middleware)."""

    async def get(self, token: str, idle_ttl: int) -> Optional[WxSession]:
        """See :meth:`SessionStore.get`."""

    async def save(
        self,
        token: str,
        session: WxSession,
        idle_ttl: int,
        code_key: Optional[str] = None,
        sealed_token: Optional[str] = None,
    ) -> None:
        """See :meth:`SessionStore.save`."""

    async def delete(self, token: str) -> bool:
        """See :meth:`SessionStore.delete`."""

    async def revoke_all(self, openid: str) -> int:
        """See :meth:`SessionStore.revoke_all`."""

    async def sessions_for(self, openid: str) -> List[SessionInfo]:
        """See :meth:`SessionStore.sessions_for`."""

    async def claim_code(self, code_key: str, ttl: int) -> Optional[str]:
        """See :meth:`SessionStore.claim_code`."""

    async def release_code(self, code_key: str) -> None:
        """See :meth:`SessionStore.release_code`."""

    async def purge_expired(self) -> int:
        """See :meth:`SessionStore.purge_expired`."""

    async def close(self) -> None:
        """See :meth:`SessionStore.close`."""
