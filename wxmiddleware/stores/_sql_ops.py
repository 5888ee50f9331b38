"""Every operation of the SQL stores, written once, as a generator of statements.

An operation yields a :class:`Call` (one statement and its parameters) or a transaction
marker (:data:`BEGIN`, :data:`COMMIT`), receives what each returned (the rows of a
``SELECT`` as tuples, the row count of anything else), and returns its result; those
requests, and how a runner carries an operation through, are in
:mod:`wxmiddleware.stores._sql_steps`.
:class:`~wxmiddleware.stores.sql.SQLStore` and :class:`~wxmiddleware.stores.sql.AsyncSQLStore`
inherit each store method, declared once (:class:`SQLStoreMethods`), and run the
operations with a small runner each, the only code that differs between the two.

The engine runs in autocommit mode: a statement outside ``BEGIN``/``COMMIT`` is its own
transaction, so the lookup of an authenticated request is one round trip, and locks are held
for one statement. Races are decided by the database: a primary key that two machines insert
at once lets one win, and the other receives :class:`Conflict` (thrown into the operation,
which decides what it means); a conditional ``UPDATE`` moves a row for one of them only.
"""

from __future__ import annotations

import logging
import time
from typing import Any, List, Optional, Tuple

from ..errors import StoreUnavailable
from ..session import (
    CLAIM_OWNER,
    CLAIM_PENDING,
    CodeClaim,
    SessionScope,
    WxSession,
    claim_used,
    deadline_after_use,
    idle_deadline,
    over_cap,
    short_hash,
    token_key,
)
from ._operations import StoreOperation
from ._sql_schema import Tables
from ._sql_steps import BEGIN, COMMIT, Call, Conflict, Operation, autocommit
from .base import PURGE_BATCH, PurgeProgress, SessionInfo, new_lock_owner

logger = logging.getLogger("wxmiddleware")

#: How often (seconds) one process's logins also delete one batch of expired rows.
PURGE_INTERVAL = 60.0
#: How many rows that inline batch deletes at most.
INLINE_PURGE_BATCH = 100
#: How many times a code claim reads again after losing a race, before it answers PENDING.
CLAIM_ATTEMPTS = 3


class SQLOperations:
    """The store protocol's operations over ``tables``, each one generator of statements.

    Results, arguments and errors are those of
    :class:`~wxmiddleware.stores.base.SessionStore`; times are the app server's
    ``time.time()``.
    """

    def __init__(self, tables: Tables) -> None:
        self.t = tables
        # When this process's next login also purges a batch of expired rows (epoch s).
        self._next_purge = 0.0

    def get(self, token: str, idle_ttl: int, scope: SessionScope) -> Operation[Optional[WxSession]]:
        """One ``SELECT`` by primary key; an ``UPDATE`` of the idle deadline only when it
        moves by more than the slide granularity
        (:func:`~wxmiddleware.session.deadline_after_use`)."""
        key = token_key(token)
        rows = yield Call(self.t.get_session, {"token_key": key})
        if not rows:
            return None
        appid, openid, unionid, sealed, created_at, expires_at, idle_until = rows[0]
        if appid != scope.appid:
            return None
        deadline = deadline_after_use(idle_until, expires_at, idle_ttl, time.time())
        if deadline is None:
            return None
        session_key = scope.open_key(openid, sealed)
        if session_key is None:
            return None
        if deadline != idle_until:
            yield Call(self.t.slide, {"token_key": key, "to": deadline})
        return WxSession(
            openid=openid,
            session_key=session_key,
            unionid=unionid,
            created_at=created_at,
            expires_at=expires_at,
            appid=appid,
            platform=scope.platform,
        )

    def save(
        self,
        token: str,
        session: WxSession,
        idle_ttl: int,
        scope: SessionScope,
        code_key: Optional[str] = None,
        sealed_token: Optional[str] = None,
    ) -> Operation[None]:
        """The session ``INSERT`` (with the code record's completion, one transaction);
        then one ``UPDATE`` puts its key into the user's other live sessions that hold an
        older one, a ``SELECT`` lists them, and the oldest beyond the cap are deleted.
        At most once per :data:`PURGE_INTERVAL` per process, one batch of expired rows
        (:data:`INLINE_PURGE_BATCH` per table) goes first; its failure is only logged."""
        key = token_key(token)
        sealed = scope.seal_key(session.openid, session.session_key)
        now = time.time()
        row = {
            "key": key,
            "appid": scope.appid,
            "openid": session.openid,
            "unionid": session.unionid,
            "sealed_key": sealed,
            "key_at": float(session.created_at),
            "created_at": float(session.created_at),
            "expires_at": float(session.expires_at),
            "idle_until": idle_deadline(session.expires_at, idle_ttl, now),
        }
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            try:
                for table, _, _ in self.t.expiring:
                    yield from self._purge_batch(table, INLINE_PURGE_BATCH)
            except StoreUnavailable as exc:  # the next round tries again
                logger.warning("SQL store maintenance failed: %s", exc.detail)
            except Conflict:  # lost its deadlocks to other machines' writes; so may they
                logger.warning("SQL store maintenance deferred: it kept losing deadlocks")
        completing = code_key is not None and sealed_token is not None
        if completing:
            yield BEGIN
        yield Call(self.t.insert_session, row)
        if completing:
            yield Call(self.t.complete_code, {"code_key": code_key, "sealed_token": sealed_token})
            yield COMMIT
        user = {"user_openid": session.openid, "user_appid": scope.appid, "now": now}
        # The session is in; a deadlock with another machine's purge or login from here on
        # must not turn the login into a 503, so these statements run again instead.
        yield from autocommit(
            Call(self.t.rekey, {**user, "sealed": sealed, "new_key_at": row["key_at"]})
        )
        live = yield from autocommit(Call(self.t.user_sessions, user))
        ended = over_cap([(gone, created) for gone, created in live], scope.max_sessions)
        for gone in ended:
            yield from autocommit(Call(self.t.delete_session, {"token_key": gone}))

    def set_session_key(
        self, openid: str, session_key: str, key_at: float, scope: SessionScope
    ) -> Operation[int]:
        """One ``UPDATE`` of the user's live sessions that hold an older key (each row gets
        the old or the new key, never a mixture), then a ``COUNT`` of them."""
        user = {"user_openid": openid, "user_appid": scope.appid, "now": time.time()}
        sealed = scope.seal_key(openid, session_key)
        yield from autocommit(
            Call(self.t.rekey, {**user, "sealed": sealed, "new_key_at": float(key_at)})
        )
        rows = yield Call(self.t.count_user_sessions, user)
        return int(rows[0][0])

    def delete(self, token: str) -> Operation[bool]:
        """One ``DELETE`` by primary key."""
        deleted = yield Call(self.t.delete_session, {"token_key": token_key(token)})
        return bool(deleted)

    def revoke_all(self, openid: str, scope: SessionScope) -> Operation[int]:
        """One ``DELETE`` by openid (indexed) and appid: the sessions of that openid in
        other apps stay."""
        user = {"user_openid": openid, "user_appid": scope.appid}
        deleted = yield Call(self.t.delete_user, user)
        return int(deleted)

    def sessions_for(self, openid: str) -> Operation[List[SessionInfo]]:
        """One ``SELECT`` by openid, oldest first."""
        rows = yield Call(self.t.sessions_for, {"user_openid": openid, "now": time.time()})
        return [
            SessionInfo(
                key_hash=short_hash(key),
                openid=found_openid,
                unionid=unionid,
                created_at=created_at,
                expires_at=expires_at,
                idle_until=idle_until,
                appid=appid,
            )
            for key, found_openid, unionid, created_at, expires_at, idle_until, appid in rows
        ]

    def claim_code(self, code_key: str, ttl: int) -> Operation[CodeClaim]:
        """A ``SELECT`` of the code's record; when there is none, an ``INSERT`` that the
        database lets one machine win (the others read again and find it pending); when it
        has expired, a conditional ``UPDATE`` that only one of them gets to make."""
        for _ in range(CLAIM_ATTEMPTS):
            now = time.time()
            rows = yield Call(self.t.get_code, {"code_key": code_key})
            if rows:
                sealed, expires_at = rows[0]
                if expires_at > now:
                    return CLAIM_PENDING if sealed == "" else claim_used(str(sealed))
                params = {"code_key": code_key, "now": now, "until": now + ttl}
                if (yield Call(self.t.reclaim_code, params)):
                    return CLAIM_OWNER
                continue
            try:
                yield Call(
                    self.t.insert_code, {"key": code_key, "sealed": "", "expires_at": now + ttl}
                )
            except Conflict:
                continue
            return CLAIM_OWNER
        return CLAIM_PENDING

    def release_code(self, code_key: str) -> Operation[None]:
        """One ``DELETE`` of the record while it is still pending."""
        yield Call(self.t.release_code, {"code_key": code_key})

    def revoke_session(self, openid: str, key_hash: str) -> Operation[bool]:
        """The openid's keys, then a ``DELETE`` of the one ``key_hash`` names."""
        rows = yield Call(self.t.openid_keys, {"user_openid": openid})
        deleted = 0
        for (key,) in rows:
            if short_hash(key) == key_hash:
                deleted += yield Call(self.t.delete_session, {"token_key": key})
        return deleted > 0

    def purge_expired(self, progress: Optional[PurgeProgress] = None) -> Operation[int]:
        """Expired sessions, then code records, values and locks, deleted in batches of
        :data:`PURGE_BATCH` rows: each batch a ``SELECT`` through the expiry index and a
        ``DELETE`` by primary key, its own short transaction, so no lock is held for long.
        ``progress`` is called after each batch of sessions."""
        purged = 0
        while True:
            deleted, more = yield from self._purge_batch(self.t.sessions, PURGE_BATCH)
            if not deleted and not more:
                break
            purged += deleted
            if progress is not None:
                progress(purged)
            if not more:
                break
        for table, _, _ in self.t.expiring[1:]:
            more = True
            while more:
                _, more = yield from self._purge_batch(table, PURGE_BATCH)
        self._next_purge = time.time() + PURGE_INTERVAL
        return purged

    def _purge_batch(self, table: Any, limit: int) -> Operation[Tuple[int, bool]]:
        # Up to `limit` expired rows of `table`; returns how many went and whether the batch
        # was full (so more may be left).
        now = time.time()
        select, _ = self.t.expired(table)
        rows = yield Call(select, {"now": now, "limit": limit})
        if not rows:
            return 0, False
        keys = [row[0] for row in rows]
        deleted = yield from autocommit(Call(self.t.delete_expired(table, keys), {"now": now}))
        return int(deleted), len(rows) == limit

    def get_value(self, name: str) -> Operation[Optional[str]]:
        """One ``SELECT`` by primary key."""
        rows = yield Call(self.t.get_value, {"value_name": name, "now": time.time()})
        return str(rows[0][0]) if rows else None

    def set_value(self, name: str, value: str, ttl: float) -> Operation[None]:
        """One upsert (``ON CONFLICT DO UPDATE`` / ``ON DUPLICATE KEY UPDATE``)."""
        yield Call(
            self.t.set_value, {"name": name, "value": value, "expires_at": time.time() + ttl}
        )

    def delete_value(self, name: str) -> Operation[bool]:
        """One ``DELETE`` of the live value."""
        deleted = yield Call(self.t.delete_value, {"value_name": name, "now": time.time()})
        return bool(deleted)

    def acquire_lock(self, name: str, ttl: float) -> Operation[Optional[str]]:
        """A lease row, taken in one short transaction under a row lock that never waits:
        ``SELECT … FOR UPDATE SKIP LOCKED``. A live row, or one another acquirer has locked
        right now, means the lock is held (``None``); an expired row is taken over with an
        ``UPDATE``; no row, an ``INSERT`` that the database lets one acquirer win. The lease
        outlives the transaction: it ends at :meth:`release_lock` or when ``ttl`` passes."""
        owner = new_lock_owner()
        now = time.time()
        yield BEGIN
        rows = yield Call(self.t.lock_row, {"lock_name": name})
        if rows and rows[0][0] > now:
            yield COMMIT
            return None
        if rows:
            take = Call(
                self.t.take_lock, {"lock_name": name, "lock_owner": owner, "until": now + ttl}
            )
        else:
            take = Call(self.t.insert_lock, {"name": name, "owner": owner, "expires_at": now + ttl})
        try:
            yield take
        except Conflict:
            return None
        yield COMMIT
        return owner

    def release_lock(self, name: str, owner: str) -> Operation[bool]:
        """One ``DELETE`` of the lease while ``owner`` holds it and it has not expired."""
        params = {"lock_name": name, "lock_owner": owner, "now": time.time()}
        return bool((yield Call(self.t.release_lock, params)))


class SQLStoreMethods:
    """The store protocol's methods; see :class:`SQLOperations` for what each sends."""

    get = StoreOperation(SQLOperations.get)
    save = StoreOperation(SQLOperations.save)
    set_session_key = StoreOperation(SQLOperations.set_session_key)
    delete = StoreOperation(SQLOperations.delete)
    revoke_all = StoreOperation(SQLOperations.revoke_all)
    sessions_for = StoreOperation(SQLOperations.sessions_for)
    claim_code = StoreOperation(SQLOperations.claim_code)
    release_code = StoreOperation(SQLOperations.release_code)
    revoke_session = StoreOperation(SQLOperations.revoke_session)
    purge_expired = StoreOperation(SQLOperations.purge_expired)
    get_value = StoreOperation(SQLOperations.get_value)
    set_value = StoreOperation(SQLOperations.set_value)
    delete_value = StoreOperation(SQLOperations.delete_value)
    acquire_lock = StoreOperation(SQLOperations.acquire_lock)
    release_lock = StoreOperation(SQLOperations.release_lock)
