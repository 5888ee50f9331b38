"""The store protocol: one synchronous interface and its asynchronous twin.

Synchronous stores close with ``close()``, asynchronous ones with ``await aclose()`` (the
convention of httpx and redis-py).

Stores receive tokens and hash them where they persist anything (see
:func:`wxmiddleware.session.token_key`); persistent stores keep the session_key only sealed
(see :mod:`wxmiddleware.stores._records`). Every session belongs to one app: the methods
that read or write session_keys, and :meth:`SessionStore.revoke_all`, take that app's
:class:`~wxmiddleware.session.SessionScope`, and find or end nothing of another app's (one
openid may have sessions in several apps: a third-party platform's apps, or tests). Login codes
reach a store only as :func:`wxmiddleware.session.code_key` plus the token sealed under the
code.
Every store raises :class:`wxmiddleware.errors.StoreUnavailable` when its backend fails,
so the middleware can fail closed with a 503.

Besides sessions, a store keeps two small kinds of state that every process and machine of
an app must share: named values with a TTL (the app's WeChat access token) and named locks
(so that one process at a time refreshes that token).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Callable, List, Optional, Protocol, runtime_checkable

from ..session import CodeClaim, SessionScope, WxSession

#: How many sessions (or index entries) :meth:`SessionStore.purge_expired` handles between
#: two calls of its ``progress`` callback.
PURGE_BATCH = 1000

#: The ``progress`` callback of :meth:`SessionStore.purge_expired`: it receives how many
#: sessions have been purged so far.
PurgeProgress = Callable[[int], None]


def new_lock_owner() -> str:
    """A fresh owner token for :meth:`SessionStore.acquire_lock` (unguessable, so that no
    other process can release a lock it does not hold)."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class SessionInfo:
    """What may be shown about a stored session: never its token or session_key."""

    key_hash: str
    openid: str
    unionid: Optional[str]
    created_at: float
    expires_at: float
    idle_until: float
    #: The app the session belongs to (``""`` where a store does not say).
    appid: str = ""


@runtime_checkable
class SessionStore(Protocol):
    """A synchronous session store (used by :class:`wxmiddleware.WxMiddleware`)."""

    def get(self, token: str, idle_ttl: int, scope: SessionScope) -> Optional[WxSession]:
        """Return the live session for ``token`` and slide its idle timeout, or ``None``.

        ``idle_ttl`` is in seconds; liveness and the slide follow
        :func:`wxmiddleware.session.deadline_after_use`. A session of another app than
        ``scope``'s is ``None``, as is a record whose session_key none of ``scope``'s keys
        opens.
        """

    def save(
        self,
        token: str,
        session: WxSession,
        idle_ttl: int,
        scope: SessionScope,
        code_key: Optional[str] = None,
        sealed_token: Optional[str] = None,
    ) -> None:
        """Store a new session of ``scope``'s app, index it under its openid, and complete a
        code claim.

        The session lives until :func:`wxmiddleware.session.idle_deadline` (``idle_ttl`` in
        seconds) unless used. Its session_key, issued at its ``created_at``, then goes into
        every other live session of the openid in the app (:meth:`set_session_key`), and
        when the user has more than ``scope.max_sessions`` of them the oldest end. With
        ``code_key`` and ``sealed_token``, a claim of that code made by :meth:`claim_code`
        is completed: later claims find it used.
        """

    def set_session_key(
        self, openid: str, session_key: str, key_at: float, scope: SessionScope
    ) -> int:
        """Put ``session_key``, issued by WeChat at ``key_at`` (epoch seconds), into every
        live session of ``openid`` in ``scope``'s app that holds an older key
        (:func:`wxmiddleware.session.key_replaces`); return how many live sessions the user
        has there.

        Each session is rewritten on its own: a failure part-way leaves each with its old
        or its new key, never a mixture, and the next login or reset completes the work.
        """

    def delete(self, token: str) -> bool:
        """End one session; ``True`` if it existed."""

    def revoke_all(self, openid: str, scope: SessionScope) -> int:
        """End every session of ``openid`` in ``scope``'s app; return how many ended.

        Only ``scope.appid`` is read: the sessions of the same openid in other apps stay.
        A session past its deadlines that the store has not removed yet may be counted.
        """

    def sessions_for(self, openid: str) -> List[SessionInfo]:
        """Describe the live sessions of ``openid``."""

    def claim_code(self, code_key: str, ttl: int) -> CodeClaim:
        """Claim a login code for ``ttl`` seconds, atomically across every user of the store.

        Returns a :class:`~wxmiddleware.session.CodeClaim` whose ``state`` is ``OWNER`` when
        the caller now owns the code (and must call WeChat, then :meth:`save` with
        ``code_key`` or :meth:`release_code`), ``PENDING`` while another request owns it, or
        ``USED`` with the ``sealed_token`` of the session an earlier login made from it. A
        record whose ``ttl`` has passed is claimed afresh.
        """

    def release_code(self, code_key: str) -> None:
        """Give up a claim whose login failed, so that a retry may try again."""

    def revoke_session(self, openid: str, key_hash: str) -> bool:
        """End the session of ``openid`` that ``key_hash`` names; ``True`` if one ended.

        ``key_hash`` is the :attr:`SessionInfo.key_hash` that :meth:`sessions_for` shows, so
        an operator can end one session (``wxmiddleware sessions revoke``) without its token.
        """

    def purge_expired(self, progress: Optional[PurgeProgress] = None) -> int:
        """Delete expired sessions and code records; return how many sessions went.

        ``progress``, when given, is called with the count so far after each batch of about
        :data:`PURGE_BATCH` sessions, so that a command can report on a large store.
        """

    def get_value(self, name: str) -> Optional[str]:
        """The value stored under ``name``, or ``None`` when there is none or its TTL passed."""

    def set_value(self, name: str, value: str, ttl: float) -> None:
        """Store ``value`` under ``name`` for ``ttl`` seconds, replacing what was there."""

    def delete_value(self, name: str) -> bool:
        """Delete the value under ``name``; ``True`` if a live one existed."""

    def acquire_lock(self, name: str, ttl: float) -> Optional[str]:
        """Take the lock ``name`` for at most ``ttl`` seconds, across every process.

        Returns the owner token that :meth:`release_lock` needs, or ``None`` while another
        owner holds the lock. A lock whose owner died frees itself once its ``ttl`` passes.
        """

    def release_lock(self, name: str, owner: str) -> bool:
        """Release the lock ``name`` if ``owner`` still holds it; ``True`` if it did."""

    def close(self) -> None:
        """Release connections."""


@runtime_checkable
class AsyncSessionStore(Protocol):
    """The asynchronous twin of :class:`SessionStore` (used by the ASGI middleware)."""

    async def get(self, token: str, idle_ttl: int, scope: SessionScope) -> Optional[WxSession]:
        """See :meth:`SessionStore.get`."""

    async def save(
        self,
        token: str,
        session: WxSession,
        idle_ttl: int,
        scope: SessionScope,
        code_key: Optional[str] = None,
        sealed_token: Optional[str] = None,
    ) -> None:
        """See :meth:`SessionStore.save`."""

    async def set_session_key(
        self, openid: str, session_key: str, key_at: float, scope: SessionScope
    ) -> int:
        """See :meth:`SessionStore.set_session_key`."""

    async def delete(self, token: str) -> bool:
        """See :meth:`SessionStore.delete`."""

    async def revoke_all(self, openid: str, scope: SessionScope) -> int:
        """See :meth:`SessionStore.revoke_all`."""

    async def sessions_for(self, openid: str) -> List[SessionInfo]:
        """See :meth:`SessionStore.sessions_for`."""

    async def claim_code(self, code_key: str, ttl: int) -> CodeClaim:
        """See :meth:`SessionStore.claim_code`."""

    async def release_code(self, code_key: str) -> None:
        """See :meth:`SessionStore.release_code`."""

    async def revoke_session(self, openid: str, key_hash: str) -> bool:
        """See :meth:`SessionStore.revoke_session`."""

    async def purge_expired(self, progress: Optional[PurgeProgress] = None) -> int:
        """See :meth:`SessionStore.purge_expired`."""

    async def get_value(self, name: str) -> Optional[str]:
        """See :meth:`SessionStore.get_value`."""

    async def set_value(self, name: str, value: str, ttl: float) -> None:
        """See :meth:`SessionStore.set_value`."""

    async def delete_value(self, name: str) -> bool:
        """See :meth:`SessionStore.delete_value`."""

    async def acquire_lock(self, name: str, ttl: float) -> Optional[str]:
        """See :meth:`SessionStore.acquire_lock`."""

    async def release_lock(self, name: str, owner: str) -> bool:
        """See :meth:`SessionStore.release_lock`."""

    async def aclose(self) -> None:
        """Release connections (what :meth:`SessionStore.close` does for a sync store)."""
