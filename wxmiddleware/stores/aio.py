"""Asynchronous stores for :class:`~wxmiddleware.WxASGIMiddleware`, each wrapping a sync one.

- :class:`AsyncMemoryStore` runs every call inline: a :class:`MemoryStore` never waits.
- :class:`AsyncSQLiteStore` runs reads inline (in WAL mode a reader never waits for a
  writer) and tries each write inline without waiting for SQLite's write lock; a write that
  finds the lock taken runs in a thread of its own, so a busy database never stalls the
  event loop.

:func:`open_async_store` turns a store URL (``WX_SESSION_STORE``) into one of them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, TypeVar, Union

from ..errors import ConfigError, StoreUnavailable
from ..session import CodeClaim, SessionScope, WxSession
from . import SQL_SCHEMES, _redis_stores, open_store, sql_stores, store_url_scheme
from ._inline import InlineAsync
from .base import AsyncSessionStore, PurgeProgress, SessionInfo
from .memory import MemoryStore
from .sqlite import SQLiteBusy, SQLiteStore, _InlineSQLiteStore

__all__ = ["AsyncMemoryStore", "AsyncSQLiteStore", "open_async_store"]

_T = TypeVar("_T")
logger = logging.getLogger("wxmiddleware")
#: After this many writes on the event loop, the writer thread checkpoints the WAL (and
#: purges expired rows when due): about one megabyte of WAL at most in between.
MAINTAIN_EVERY = 100


class AsyncMemoryStore:
    """An :class:`~wxmiddleware.stores.base.AsyncSessionStore` over a :class:`MemoryStore`,
    whose every call runs inline: a :class:`MemoryStore` never waits.

    ``sync`` is the wrapped store (a new one unless ``store`` is given), for code that
    shares it with synchronous callers.
    """

    def __init__(self, store: Optional[MemoryStore] = None) -> None:
        self.sync = store if store is not None else MemoryStore()

    get = InlineAsync(MemoryStore.get)
    save = InlineAsync(MemoryStore.save)
    set_session_key = InlineAsync(MemoryStore.set_session_key)
    delete = InlineAsync(MemoryStore.delete)
    revoke_all = InlineAsync(MemoryStore.revoke_all)
    sessions_for = InlineAsync(MemoryStore.sessions_for)
    claim_code = InlineAsync(MemoryStore.claim_code)
    release_code = InlineAsync(MemoryStore.release_code)
    revoke_session = InlineAsync(MemoryStore.revoke_session)
    purge_expired = InlineAsync(MemoryStore.purge_expired)
    get_value = InlineAsync(MemoryStore.get_value)
    set_value = InlineAsync(MemoryStore.set_value)
    delete_value = InlineAsync(MemoryStore.delete_value)
    acquire_lock = InlineAsync(MemoryStore.acquire_lock)
    release_lock = InlineAsync(MemoryStore.release_lock)

    async def aclose(self) -> None:
        """Close the wrapped store (it holds nothing to release)."""
        self.sync.close()


class AsyncSQLiteStore:
    """An :class:`~wxmiddleware.stores.base.AsyncSessionStore` over a :class:`SQLiteStore`.

    ``store`` is the :class:`SQLiteStore` to wrap, or the path of its database file; ``sync``
    is the wrapped store. Reads (the SELECT of :meth:`get`) run inline.

    A write (a code claim, a new session, a logout, a sliding deadline) first runs inline on
    a connection that never waits: when SQLite's write lock is free, which it nearly always
    is, it takes about 0.1 ms, less than handing it to a thread costs. When another writer
    holds the lock, SQLite refuses at once, nothing is written, and the write goes to a
    single thread per process, where it waits for the lock (its busy handler sleeps in steps
    of up to 100 ms) without stalling the event loop. The inline writes never checkpoint the
    WAL (a checkpoint may ``fsync``) nor purge expired rows; that thread does both, every
    :data:`MAINTAIN_EVERY` inline writes.
    """

    def __init__(self, store: Union[SQLiteStore, str, os.PathLike[str]]) -> None:
        self.sync = store if isinstance(store, SQLiteStore) else SQLiteStore(store)
        self._inline = _InlineSQLiteStore(self.sync.path, timeout=0.0)
        self._inline_writes = 0
        self._maintenance: Optional[asyncio.Future[None]] = None
        self._writer: Optional[ThreadPoolExecutor] = None
        self._writer_pid = 0
        # Until the writer thread has opened the database, which may create the file and its
        # schema under the write lock, reads go there too.
        self._opened = False

    def __repr__(self) -> str:
        return f"AsyncSQLiteStore({str(self.sync.path)!r})"

    async def _in_writer(self, function: Callable[..., _T], *args: object) -> _T:
        pid = os.getpid()
        if self._writer is None or self._writer_pid != pid:
            # Created in the process that uses it: an executor's thread does not survive fork.
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="wxmiddleware-sqlite")
            self._writer_pid = pid
        result = await asyncio.get_running_loop().run_in_executor(self._writer, function, *args)
        self._opened = True
        return result

    async def _write(
        self, inline: Callable[..., _T], in_writer: Callable[..., _T], *args: object
    ) -> _T:
        """``inline(*args)`` if SQLite's write lock is free, else ``in_writer(*args)`` there."""
        if self._opened:
            try:
                result = inline(*args)
            except SQLiteBusy:
                pass
            else:
                self._inline_writes += 1
                if self._inline_writes % MAINTAIN_EVERY == 0 and (
                    self._maintenance is None or self._maintenance.done()
                ):
                    self._maintenance = asyncio.ensure_future(self._maintain())
                return result
        return await self._in_writer(in_writer, *args)

    async def _maintain(self) -> None:
        try:
            await self._in_writer(self.sync._maintain)
        except StoreUnavailable as error:  # the next round tries again
            logger.warning("SQLite maintenance failed: %s", error.detail)

    async def get(self, token: str, idle_ttl: int, scope: SessionScope) -> Optional[WxSession]:
        """See :meth:`SessionStore.get`."""
        if self._opened:
            found = self.sync._lookup(token, idle_ttl, scope)
        else:
            found = await self._in_writer(self.sync._lookup, token, idle_ttl, scope)
        if found is None:
            return None
        if found.slide_to is not None:
            await self._write(self._inline._slide, self.sync._slide, found)
        return found.session

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
        await self._write(
            self._inline.save,
            self.sync.save,
            token,
            session,
            idle_ttl,
            scope,
            code_key,
            sealed_token,
        )

    async def set_session_key(
        self, openid: str, session_key: str, key_at: float, scope: SessionScope
    ) -> int:
        """See :meth:`SessionStore.set_session_key`."""
        return await self._write(
            self._inline.set_session_key,
            self.sync.set_session_key,
            openid,
            session_key,
            key_at,
            scope,
        )

    async def delete(self, token: str) -> bool:
        """See :meth:`SessionStore.delete`."""
        return await self._write(self._inline.delete, self.sync.delete, token)

    async def revoke_all(self, openid: str, scope: SessionScope) -> int:
        """See :meth:`SessionStore.revoke_all`."""
        return await self._in_writer(self.sync.revoke_all, openid, scope)

    async def sessions_for(self, openid: str) -> List[SessionInfo]:
        """See :meth:`SessionStore.sessions_for`."""
        return await self._in_writer(self.sync.sessions_for, openid)

    async def claim_code(self, code_key: str, ttl: int) -> CodeClaim:
        """See :meth:`SessionStore.claim_code`."""
        return await self._write(self._inline.claim_code, self.sync.claim_code, code_key, ttl)

    async def release_code(self, code_key: str) -> None:
        """See :meth:`SessionStore.release_code`."""
        await self._write(self._inline.release_code, self.sync.release_code, code_key)

    async def revoke_session(self, openid: str, key_hash: str) -> bool:
        """See :meth:`SessionStore.revoke_session`."""
        return await self._in_writer(self.sync.revoke_session, openid, key_hash)

    async def purge_expired(self, progress: Optional[PurgeProgress] = None) -> int:
        """See :meth:`SessionStore.purge_expired`; ``progress`` is called in the event loop."""
        if progress is None:
            return await self._in_writer(self.sync.purge_expired)
        loop = asyncio.get_running_loop()
        # The batches run in the writer thread; each report is handed back to the loop, where
        # it runs before this coroutine resumes (call_soon_threadsafe keeps their order).
        return await self._in_writer(
            self.sync.purge_expired, lambda count: loop.call_soon_threadsafe(progress, count)
        )

    async def get_value(self, name: str) -> Optional[str]:
        """See :meth:`SessionStore.get_value`; a read, so it runs inline like :meth:`get`'s."""
        if self._opened:
            return self.sync.get_value(name)
        return await self._in_writer(self.sync.get_value, name)

    async def set_value(self, name: str, value: str, ttl: float) -> None:
        """See :meth:`SessionStore.set_value`."""
        await self._in_writer(self.sync.set_value, name, value, ttl)

    async def delete_value(self, name: str) -> bool:
        """See :meth:`SessionStore.delete_value`."""
        return await self._in_writer(self.sync.delete_value, name)

    async def acquire_lock(self, name: str, ttl: float) -> Optional[str]:
        """See :meth:`SessionStore.acquire_lock`."""
        return await self._in_writer(self.sync.acquire_lock, name, ttl)

    async def release_lock(self, name: str, owner: str) -> bool:
        """See :meth:`SessionStore.release_lock`."""
        return await self._in_writer(self.sync.release_lock, name, owner)

    async def aclose(self) -> None:
        """Close the writer thread's and this thread's connections; stop the writer thread."""
        if self._maintenance is not None and not self._maintenance.done():
            await self._maintenance
        writer = self._writer
        if writer is not None and self._writer_pid == os.getpid():
            await asyncio.get_running_loop().run_in_executor(writer, self.sync.close)
            writer.shutdown(wait=False)
        self._writer = None
        self.sync.close()
        self._inline.close()


def open_async_store(url: Optional[str], appid: str) -> AsyncSessionStore:
    """Open the asynchronous store a URL names (the URLs of :func:`open_store`).

    ``sqlite:`` URLs (and ``None``, the default SQLite file for ``appid``) give an
    :class:`AsyncSQLiteStore`, ``memory://`` an :class:`AsyncMemoryStore`, and
    ``redis://``/``rediss://`` an ``AsyncRedisStore`` (``wxmiddleware[redis]``), and
    ``postgresql://``/``mysql://`` an ``AsyncSQLStore`` (``wxmiddleware[sql]``; asyncpg or
    aiomysql, whatever sync driver the URL names).
    Raises :class:`~wxmiddleware.errors.ConfigError` for any other URL.
    """
    if url and store_url_scheme(url) in ("redis", "rediss"):
        redis_store: AsyncSessionStore = _redis_stores().AsyncRedisStore.from_url(url)
        return redis_store
    if url and store_url_scheme(url).split("+", 1)[0] in SQL_SCHEMES:
        sql_store: AsyncSessionStore = sql_stores().open_url(url, asynchronous=True)
        return sql_store
    store = open_store(url, appid)
    if isinstance(store, MemoryStore):
        return AsyncMemoryStore(store)
    if isinstance(store, SQLiteStore):
        return AsyncSQLiteStore(store)
    raise ConfigError(f"no asynchronous store for {type(store).__name__}")
