"""Every operation of the Redis stores, written once, as a generator of round trips.

An operation yields :class:`~wxmiddleware.stores._redis_layout.Batch` es (commands to send
in one round trip) or :class:`~wxmiddleware.stores._redis_layout.ScanPage` s (one ``SCAN``
page of openid index keys), receives what each returned, and returns its result.
:class:`~wxmiddleware.stores.redis.RedisStore` and
:class:`~wxmiddleware.stores.redis.AsyncRedisStore` inherit each store method, declared once
(:class:`RedisStoreMethods`), and run the operations with a small runner each, the only code
that differs between the two; :class:`~._redis_steps.Steps` hands a redis-py error to the
operation, which turns it into :class:`~wxmiddleware.errors.StoreUnavailable`.
"""

from __future__ import annotations

import itertools
import math
import secrets
import time
from typing import (
    List,
    Optional,
    Sequence,
    Tuple,
)

from ..session import (
    CodeClaim,
    SessionScope,
    WxSession,
    idle_deadline,
    is_live,
    over_cap,
    short_hash,
    token_key,
)
from . import _records
from ._operations import StoreOperation
from ._redis_layout import (
    MAINTENANCE_EVERY,
    PENDING_PREFIX,
    REDIS_ERRORS,
    REKEY_GONE,
    REKEY_LIVE,
    REKEY_SCRIPT,
    RELEASE_LOCK_SCRIPT,
    RELEASE_SCRIPT,
    REVOKE_SCRIPT,
    REVOKED,
    STEP_COUNT,
    Batch,
    Command,
    Cursor,
    Keys,
    Operation,
    ScanPage,
    claim_commands,
    claim_result,
    describe,
    failures,
    hashed_of,
    index_command,
    lock_commands,
    lock_result,
    parse_session,
    score_pairs,
    text,
    token_id,
    ttl_ms,
)
from .base import PURGE_BATCH, PurgeProgress, SessionInfo, new_lock_owner


class RedisOperations:
    """The store protocol's operations over ``keys``, each one generator of round trips.

    ``cluster`` says the client is a Cluster client, where a login's keys live in different
    slots and no transaction can cover them. Results, arguments and errors are those of
    :class:`~wxmiddleware.stores.base.SessionStore`. One object serves one store (on an
    asynchronous store, one event loop's client): it counts the saves and keeps the ``SCAN``
    cursor of the amortised purge (:meth:`save`).
    """

    def __init__(self, keys: Keys, cluster: bool) -> None:
        self.keys = keys
        self.cluster = cluster
        self._saves = itertools.count(1)
        # Two threads may read the same cursor and prune one page twice: harmless.
        self._cursor: Cursor = None

    def get(self, token: str, idle_ttl: int, scope: SessionScope) -> Operation[Optional[WxSession]]:
        """One ``GETEX key EX idle_ttl``: the session, its idle timeout slid. Only in the last
        ``idle_ttl`` seconds of a session's absolute lifetime does a ``PEXPIRE`` follow, to cap
        the key's TTL at that expiry (a cap of zero or less deletes a session that is over)."""
        hashed = token_key(token)
        key = self.keys.session(token_id(hashed))
        with failures("get", "session", hashed):
            (raw,) = yield Batch((("GETEX", key, "EX", idle_ttl),))
            if raw is None:
                return None
            session = parse_session(raw, hashed, scope)
            if session is None:
                return None
            now = time.time()
            deadline = idle_deadline(session.expires_at, idle_ttl, now)
            left_ms = math.ceil((deadline - now) * 1000)
            if left_ms < idle_ttl * 1000:
                yield Batch((("PEXPIRE", key, left_ms),))
        return session if is_live(deadline, session.expires_at, now) else None

    def save(
        self,
        token: str,
        session: WxSession,
        idle_ttl: int,
        scope: SessionScope,
        code_key: Optional[str] = None,
        sealed_token: Optional[str] = None,
    ) -> Operation[None]:
        """The openid index entry (a one-key script), the session and, when a claim is being
        completed, its code record (its TTL kept), with the index read back: one
        ``MULTI``/``EXEC``, or on a Cluster the index entry first, so that a failure leaves
        no session ``revoke_all`` cannot find. Then the new key goes into the user's other
        sessions (:meth:`set_session_key`'s scripts, one round trip) and the oldest beyond
        the cap are deleted (one more round trip, only then). Every
        :data:`~wxmiddleware.stores._redis_layout.MAINTENANCE_EVERY`-th save of this store
        then runs one bounded step of :meth:`purge_expired` (:meth:`_purge_step`)."""
        hashed = token_key(token)
        now = time.time()
        index_key = self.keys.index(session.openid)
        member = token_id(hashed)
        index = index_command(index_key, member, session, now)
        sealed = scope.seal_key(session.openid, session.session_key)
        record = _records.encode(session, scope, sealed)
        # At least 1 ms: a session already past its expiry is written to vanish at once.
        ttl_ms = max(1, math.ceil((idle_deadline(session.expires_at, idle_ttl, now) - now) * 1000))
        rest: List[Command] = [("SET", self.keys.session(member), record, "PX", ttl_ms)]
        if code_key is not None and sealed_token is not None:
            rest.append(("SET", self.keys.code(code_key), sealed_token, "XX", "KEEPTTL"))
        read_index: Command = ("ZRANGE", index_key, 0, -1, "WITHSCORES")
        with failures("save", "session", hashed):
            if self.cluster:
                replies = yield Batch((index, read_index))
                yield Batch(rest)
            else:
                replies = yield Batch((index, *rest, read_index), transaction=True)
            others = [entry for entry in score_pairs(replies[-1]) if entry[0] != member]
            live = yield from self._rekey(index_key, others, sealed, session.created_at, scope)
            # Index scores are absolute expiries: within one app, the order of creation.
            ended = over_cap([*live, (member, session.expires_at)], scope.max_sessions)
            if ended:
                yield Batch(self._revoke_commands(session.openid, ended))
        if next(self._saves) % MAINTENANCE_EVERY == 0:
            yield from self._purge_step()

    def set_session_key(
        self, openid: str, session_key: str, key_at: float, scope: SessionScope
    ) -> Operation[int]:
        """The openid's index, then one script per session (one key each, one round trip)
        that puts the sealed key in unless the session holds a newer one."""
        index_key = self.keys.index(openid)
        with failures("set_session_key"):
            (raw,) = yield Batch((("ZRANGE", index_key, 0, -1, "WITHSCORES"),))
            sealed = scope.seal_key(openid, session_key)
            live = yield from self._rekey(index_key, score_pairs(raw), sealed, key_at, scope)
        return len(live)

    def _rekey(
        self,
        index_key: str,
        members: List[Tuple[str, float]],
        sealed: str,
        key_at: float,
        scope: SessionScope,
    ) -> Operation[List[Tuple[str, float]]]:
        # The key into each indexed session; returns the live ones of scope's app (with
        # their index scores) and unindexes the gone ones.
        if not members:
            return []
        appid = _records.appid_member(scope.appid)
        stamp = repr(float(key_at))
        answers = yield Batch(
            [
                ("EVAL", REKEY_SCRIPT, 1, self.keys.session(member), sealed, stamp, appid)
                for member, _ in members
            ]
        )
        gone = [member for (member, _), answer in zip(members, answers) if answer == REKEY_GONE]
        if gone:
            yield Batch((("ZREM", index_key, *gone),))
        return [entry for entry, answer in zip(members, answers) if answer in REKEY_LIVE]

    def delete(self, token: str) -> Operation[bool]:
        """``GETDEL`` of the session, then ``ZREM`` of its index entry."""
        hashed = token_key(token)
        with failures("delete", "session", hashed):
            member = token_id(hashed)
            (raw,) = yield Batch((("GETDEL", self.keys.session(member)),))
            if raw is None:
                return False
            try:
                openid = _records.public_fields(raw).openid
            except (ValueError, KeyError, TypeError):
                return True  # not ours to index; the session key is gone either way
            yield Batch((("ZREM", self.keys.index(openid), member),))
        return True

    def revoke_all(self, openid: str, scope: SessionScope) -> Operation[int]:
        """The openid's index (shared by every app), then one script per session (one key
        each, one round trip) that deletes it if it is of ``scope``'s app, then the
        entries of the deleted and the gone sessions removed from the index."""
        with failures("revoke_all"):
            members = yield from self._index_members(openid)
            if not members:
                return 0
            appid = _records.appid_member(scope.appid)
            answers = yield Batch(
                [("EVAL", REVOKE_SCRIPT, 1, self.keys.session(m), appid) for m in members]
            )
            ended = [m for m, answer in zip(members, answers) if answer == REVOKED]
            unindexed = [
                m for m, answer in zip(members, answers) if answer in (REVOKED, REKEY_GONE)
            ]
            if unindexed:
                yield Batch((("ZREM", self.keys.index(openid), *unindexed),))
        return len(ended)

    def sessions_for(self, openid: str) -> Operation[List[SessionInfo]]:
        """The openid's index, then ``GET`` and ``PTTL`` of each session (oldest first); index
        entries whose session Redis has expired are removed."""
        with failures("sessions_for"):
            members = yield from self._index_members(openid)
            if not members:
                return []
            commands: List[Command] = []
            for member in members:
                commands += [
                    ("GET", self.keys.session(member)),
                    ("PTTL", self.keys.session(member)),
                ]
            results = yield Batch(commands)
            infos, stale = describe(members, results, time.time())
            if stale:
                yield Batch((("ZREM", self.keys.index(openid), *stale),))
        return infos

    def claim_code(self, code_key: str, ttl: int) -> Operation[CodeClaim]:
        """``SET NX EX`` of a fresh marker and ``GET``, one round trip."""
        marker = PENDING_PREFIX + secrets.token_hex(8)
        with failures("claim_code", "code", code_key):
            results = yield Batch(claim_commands(self.keys, code_key, marker, ttl))
        return claim_result(results, marker)

    def release_code(self, code_key: str) -> Operation[None]:
        """Deletes a still-pending claim (a one-key script)."""
        with failures("release_code", "code", code_key):
            yield Batch((("EVAL", RELEASE_SCRIPT, 1, self.keys.code(code_key)),))

    def revoke_session(self, openid: str, key_hash: str) -> Operation[bool]:
        """The openid's index, then the session ``key_hash`` names and its entry deleted."""
        with failures("revoke_session"):
            members = yield from self._index_members(openid)
            named = [member for member in members if short_hash(hashed_of(member)) == key_hash]
            if not named:
                return False
            results = yield Batch(self._revoke_commands(openid, named))
        return any(results[:-1])

    def purge_expired(self, progress: Optional[PurgeProgress] = None) -> Operation[int]:
        """Removes index entries of sessions Redis has expired; returns how many went.

        Redis deletes sessions and records itself, by their TTLs, and ``sessions_for``,
        ``revoke_all`` and the next login of an openid tidy its index; the saves of a store
        walk the indexes a page at a time (:meth:`_purge_step`). This walks every index now,
        with ``SCAN`` (three round trips per :data:`PURGE_BATCH` indexes, besides the
        ``SCAN`` pages), for a cron job. An index whose last entry goes is gone (Redis
        deletes an empty sorted set). ``progress`` is called after each batch.
        """
        purged = 0
        chunk: List[str] = []
        cursor: Cursor = None
        with failures("purge_expired"):
            while True:
                cursor, found = yield ScanPage(cursor, PURGE_BATCH)
                chunk += found
                while len(chunk) >= PURGE_BATCH or (chunk and cursor is None):
                    purged += yield from self._unindex_gone(chunk[:PURGE_BATCH])
                    del chunk[:PURGE_BATCH]
                    if progress is not None:
                        progress(purged)
                if cursor is None:
                    return purged

    def get_value(self, name: str) -> Operation[Optional[str]]:
        """``GET``."""
        with failures(f"get_value {name}"):
            (raw,) = yield Batch((("GET", self.keys.value(name)),))
        return None if raw is None else text(raw)

    def set_value(self, name: str, value: str, ttl: float) -> Operation[None]:
        """``SET PX``."""
        with failures(f"set_value {name}"):
            yield Batch((("SET", self.keys.value(name), value, "PX", ttl_ms(ttl)),))

    def delete_value(self, name: str) -> Operation[bool]:
        """``DEL``."""
        with failures(f"delete_value {name}"):
            (deleted,) = yield Batch((("DEL", self.keys.value(name)),))
        return bool(deleted)

    def acquire_lock(self, name: str, ttl: float) -> Operation[Optional[str]]:
        """``SET NX PX`` of a fresh owner token and ``GET``, one round trip."""
        owner = new_lock_owner()
        with failures(f"acquire_lock {name}"):
            results = yield Batch(lock_commands(self.keys, name, owner, ttl))
        return lock_result(results, owner)

    def release_lock(self, name: str, owner: str) -> Operation[bool]:
        """A compare-and-delete script."""
        with failures(f"release_lock {name}"):
            command = ("EVAL", RELEASE_LOCK_SCRIPT, 1, self.keys.lock(name), owner)
            (released,) = yield Batch((command,))
        return bool(released)

    def _index_members(self, openid: str) -> Operation[List[str]]:
        (raw,) = yield Batch((("ZRANGE", self.keys.index(openid), 0, -1),))
        return [text(member) for member in raw]

    def _revoke_commands(self, openid: str, members: Sequence[str]) -> List[Command]:
        # Removes only the entries read, so that a session saved meanwhile stays indexed.
        commands: List[Command] = [("DEL", self.keys.session(member)) for member in members]
        commands.append(("ZREM", self.keys.index(openid), *members))
        return commands

    def _purge_step(self) -> Operation[None]:
        # One SCAN page from where this store's last step stopped (a single-key ZREM per
        # index), so that no save pays more than one page and every index is reached.
        try:
            self._cursor, found = yield ScanPage(self._cursor, STEP_COUNT)
            if found:
                yield from self._unindex_gone(found)
        except REDIS_ERRORS:
            return  # the login is saved; housekeeping resumes at the next step

    def _unindex_gone(self, indexes: List[str]) -> Operation[int]:
        # A removed entry cannot come back meanwhile: a new session has a new token, so a new
        # hash.
        ranges = yield Batch([("ZRANGE", index, 0, -1) for index in indexes])
        memberships = [[text(member) for member in raw] for raw in ranges]
        exists = iter(
            (yield Batch([("EXISTS", self.keys.session(m)) for ms in memberships for m in ms]))
        )
        removals: List[Command] = []
        for index, members in zip(indexes, memberships):
            gone = [member for member in members if not next(exists)]
            if gone:
                removals.append(("ZREM", index, *gone))
        if not removals:
            return 0
        return sum((yield Batch(removals)))


class RedisStoreMethods:
    """The store protocol's methods; see :class:`RedisOperations` for what each sends."""

    get = StoreOperation(RedisOperations.get)
    save = StoreOperation(RedisOperations.save)
    set_session_key = StoreOperation(RedisOperations.set_session_key)
    delete = StoreOperation(RedisOperations.delete)
    revoke_all = StoreOperation(RedisOperations.revoke_all)
    sessions_for = StoreOperation(RedisOperations.sessions_for)
    claim_code = StoreOperation(RedisOperations.claim_code)
    release_code = StoreOperation(RedisOperations.release_code)
    revoke_session = StoreOperation(RedisOperations.revoke_session)
    purge_expired = StoreOperation(RedisOperations.purge_expired)
    get_value = StoreOperation(RedisOperations.get_value)
    set_value = StoreOperation(RedisOperations.set_value)
    delete_value = StoreOperation(RedisOperations.delete_value)
    acquire_lock = StoreOperation(RedisOperations.acquire_lock)
    release_lock = StoreOperation(RedisOperations.release_lock)
