"""Every store the middleware tests build, per adapter, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from wxmiddleware import AsyncMemoryStore, AsyncSQLiteStore, MemoryStore, SQLiteStore
from wxmiddleware._sealing import Sealer
from wxmiddleware.errors import StoreUnavailable
from wxmiddleware.session import CodeClaim, SessionScope, WxSession

WSGI = "wsgi"
ASGI = "asgi"


def memory_store(adapter: str) -> Any:
    """The store a test app uses unless it asks for another."""
    return MemoryStore() if adapter == WSGI else AsyncMemoryStore()


def sqlite_store(adapter: str, path: Path) -> Any:
    return SQLiteStore(path) if adapter == WSGI else AsyncSQLiteStore(path)


def live_memory_store(adapter: str, token: str, session: WxSession, ttl: int) -> Any:
    """A memory store that already holds ``session`` under ``token``, for its app."""
    store = MemoryStore()
    store.save(token, session, ttl, SessionScope(session.appid, Sealer(["unused-in-memory"])))
    return store if adapter == WSGI else AsyncMemoryStore(store)


class DownStore(MemoryStore):
    """A store whose server is down: reading a session or claiming a code fails."""

    def get(self, token: str, idle_ttl: int, scope: SessionScope) -> Optional[WxSession]:
        raise StoreUnavailable()

    def claim_code(self, code_key: str, ttl: int) -> CodeClaim:
        raise StoreUnavailable()


class AsyncDownStore(AsyncMemoryStore):
    """The async twin of :class:`DownStore`."""

    async def get(self, token: str, idle_ttl: int, scope: SessionScope) -> Optional[WxSession]:
        raise StoreUnavailable()

    async def claim_code(self, code_key: str, ttl: int) -> CodeClaim:
        raise StoreUnavailable()


def down_store(adapter: str) -> Any:
    return DownStore() if adapter == WSGI else AsyncDownStore()


async def aclose_store(store: Any) -> None:
    """Close an async store."""
    await store.aclose()
