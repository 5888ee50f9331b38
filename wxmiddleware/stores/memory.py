"""MemoryStore: sessions in this process only (tests, single-process development servers).

It holds nothing outside the process, so it keys sessions by the token itself (hashing on
every request would cost a measurable share of a fast framework's request) and keeps
session_keys in clear.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Dict, List, Optional, Set, Tuple

from ..session import (
    CLAIM_OWNER,
    CLAIM_PENDING,
    ClaimState,
    CodeClaim,
    SessionScope,
    WxSession,
    claim_used,
    deadline_after_use,
    idle_deadline,
    is_live,
    key_replaces,
    over_cap,
    quiet_until,
    short_hash,
    token_key,
)
from .base import PURGE_BATCH, PurgeProgress, SessionInfo, new_lock_owner


class _Entry:
    # expires_at and appid copy the session's: a slot reads faster than a dataclass field.
    # key_at: when WeChat issued the session_key the session holds (epoch seconds).
    # quiet_until: before it, a use with idle_ttl == quiet_ttl changes nothing.
    __slots__ = (
        "appid",
        "expires_at",
        "idle_until",
        "key_at",
        "quiet_ttl",
        "quiet_until",
        "session",
    )

    def __init__(self, session: WxSession, idle_until: float, key_at: float, idle_ttl: int):
        self.session = session
        self.expires_at = session.expires_at
        self.appid = session.appid
        self.key_at = key_at
        self.slide(idle_until, idle_ttl)

    def slide(self, idle_until: float, idle_ttl: int) -> None:
        self.idle_until = idle_until
        self.quiet_until = quiet_until(idle_until, self.expires_at, idle_ttl)
        self.quiet_ttl = idle_ttl


class MemoryStore:
    """A thread-safe in-process :class:`~wxmiddleware.stores.base.SessionStore`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: Dict[str, _Entry] = {}
        self._by_openid: Dict[str, Set[str]] = {}
        # code_key -> (what claim_code answers, expires_at)
        self._codes: Dict[str, Tuple[CodeClaim, float]] = {}
        # name -> (value, expires_at) and name -> (owner, expires_at)
        self._values: Dict[str, Tuple[str, float]] = {}
        self._locks: Dict[str, Tuple[str, float]] = {}

    def get(self, token: str, idle_ttl: int, scope: SessionScope) -> Optional[WxSession]:
        """See :meth:`SessionStore.get`."""
        entry = self._sessions.get(token)
        if entry is None or entry.appid != scope.appid:
            return None
        now = time.time()
        if now < entry.quiet_until and idle_ttl == entry.quiet_ttl:
            return entry.session
        deadline = deadline_after_use(entry.idle_until, entry.expires_at, idle_ttl, now)
        if deadline is None:
            self.delete(token)
            return None
        entry.slide(deadline, idle_ttl)
        return entry.session

    def save(
        self,
        token: str,
        session: WxSession,
        idle_ttl: int,
        scope: SessionScope,
        code_key: Optional[str] = None,
        sealed_token: Optional[str] = None,
    ) -> None:
        """See :meth:`SessionStore.save`."""
        if session.appid != scope.appid or session.platform != scope.platform:
            session = replace(session, appid=scope.appid, platform=scope.platform)
        now = time.time()
        idle_until = idle_deadline(session.expires_at, idle_ttl, now)
        with self._lock:
            self._sessions[token] = _Entry(session, idle_until, session.created_at, idle_ttl)
            self._by_openid.setdefault(session.openid, set()).add(token)
            live = self._rekey(session.openid, session.session_key, session.created_at, scope, now)
            ended = over_cap(live, scope.max_sessions)
            if code_key is not None and sealed_token is not None:
                expires = self._codes.get(code_key, (CLAIM_PENDING, now))[1]
                self._codes[code_key] = (claim_used(sealed_token), expires)
        for gone in ended:
            self.delete(gone)

    def set_session_key(
        self, openid: str, session_key: str, key_at: float, scope: SessionScope
    ) -> int:
        """See :meth:`SessionStore.set_session_key`."""
        with self._lock:
            return len(self._rekey(openid, session_key, key_at, scope, time.time()))

    def _rekey(
        self, openid: str, session_key: str, key_at: float, scope: SessionScope, now: float
    ) -> List[Tuple[str, float]]:
        # Under the lock: the key issued at key_at into every live session of the openid in
        # scope's app that holds an older one; returns those sessions and their creation.
        live = []
        for token in self._by_openid.get(openid, ()):
            entry = self._sessions[token]
            if entry.appid != scope.appid or not is_live(entry.idle_until, entry.expires_at, now):
                continue
            if key_replaces(entry.key_at, key_at):
                entry.key_at = key_at
                if entry.session.session_key != session_key:
                    entry.session = replace(entry.session, session_key=session_key)
            live.append((token, entry.session.created_at))
        return live

    def delete(self, token: str) -> bool:
        """See :meth:`SessionStore.delete`."""
        with self._lock:
            entry = self._sessions.pop(token, None)
            if entry is None:
                return False
            openid = entry.session.openid
            tokens = self._by_openid.get(openid)
            if tokens is not None:
                tokens.discard(token)
                if not tokens:
                    del self._by_openid[openid]
            return True

    def revoke_all(self, openid: str, scope: SessionScope) -> int:
        """See :meth:`SessionStore.revoke_all`."""
        with self._lock:
            tokens = self._by_openid.get(openid, set())
            ended = {token for token in tokens if self._sessions[token].appid == scope.appid}
            for token in ended:
                del self._sessions[token]
            tokens -= ended
            if not tokens:
                self._by_openid.pop(openid, None)
            return len(ended)

    def sessions_for(self, openid: str) -> List[SessionInfo]:
        """See :meth:`SessionStore.sessions_for`."""
        now = time.time()
        with self._lock:
            entries = [(t, self._sessions[t]) for t in self._by_openid.get(openid, ())]
        return [
            SessionInfo(
                key_hash=short_hash(token_key(token)),
                openid=entry.session.openid,
                unionid=entry.session.unionid,
                created_at=entry.session.created_at,
                expires_at=entry.session.expires_at,
                idle_until=entry.idle_until,
                appid=entry.appid,
            )
            for token, entry in entries
            if is_live(entry.idle_until, entry.session.expires_at, now)
        ]

    def claim_code(self, code_key: str, ttl: int) -> CodeClaim:
        """See :meth:`SessionStore.claim_code`."""
        now = time.time()
        with self._lock:
            record = self._codes.get(code_key)
            if record is not None and record[1] > now:
                return record[0]
            self._codes[code_key] = (CLAIM_PENDING, now + ttl)
            return CLAIM_OWNER

    def release_code(self, code_key: str) -> None:
        """See :meth:`SessionStore.release_code`."""
        with self._lock:
            record = self._codes.get(code_key)
            if record is not None and record[0].state is ClaimState.PENDING:
                del self._codes[code_key]

    def revoke_session(self, openid: str, key_hash: str) -> bool:
        """See :meth:`SessionStore.revoke_session`."""
        with self._lock:
            tokens = list(self._by_openid.get(openid, ()))
        for token in tokens:
            if short_hash(token_key(token)) == key_hash:
                return self.delete(token)
        return False

    def purge_expired(self, progress: Optional[PurgeProgress] = None) -> int:
        """See :meth:`SessionStore.purge_expired`."""
        now = time.time()
        with self._lock:
            dead = [
                token
                for token, entry in self._sessions.items()
                if not is_live(entry.idle_until, entry.session.expires_at, now)
            ]
            self._codes = {k: v for k, v in self._codes.items() if v[1] > now}
            self._values = {k: v for k, v in self._values.items() if v[1] > now}
            self._locks = {k: v for k, v in self._locks.items() if v[1] > now}
        purged = 0
        for start in range(0, len(dead), PURGE_BATCH):
            purged += sum(self.delete(token) for token in dead[start : start + PURGE_BATCH])
            if progress is not None:
                progress(purged)
        return purged

    def get_value(self, name: str) -> Optional[str]:
        """See :meth:`SessionStore.get_value`."""
        record = self._values.get(name)
        return record[0] if record is not None and record[1] > time.time() else None

    def set_value(self, name: str, value: str, ttl: float) -> None:
        """See :meth:`SessionStore.set_value`."""
        with self._lock:
            self._values[name] = (value, time.time() + ttl)

    def delete_value(self, name: str) -> bool:
        """See :meth:`SessionStore.delete_value`."""
        with self._lock:
            record = self._values.pop(name, None)
        return record is not None and record[1] > time.time()

    def acquire_lock(self, name: str, ttl: float) -> Optional[str]:
        """See :meth:`SessionStore.acquire_lock`."""
        now = time.time()
        with self._lock:
            held = self._locks.get(name)
            if held is not None and held[1] > now:
                return None
            owner = new_lock_owner()
            self._locks[name] = (owner, now + ttl)
            return owner

    def release_lock(self, name: str, owner: str) -> bool:
        """See :meth:`SessionStore.release_lock`."""
        with self._lock:
            held = self._locks.get(name)
            if held is None or held[0] != owner:
                return False
            del self._locks[name]
        return held[1] > time.time()

    def close(self) -> None:
        """Nothing to release."""
