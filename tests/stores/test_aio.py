"""The asynchronous stores beyond the contract (test_contract.py runs that on them): progress
reports, the wrapped memory store, SQLite off the event loop, and open_async_store."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import AsyncIterator, Callable, List, Tuple, Union

import pytest

from tests.stores.support import SCOPE
from wxmiddleware.errors import ConfigError, StoreUnavailable
from wxmiddleware.session import ClaimState, WxSession, code_key, new_token, token_key
from wxmiddleware.stores import MemoryStore, SQLiteStore
from wxmiddleware.stores import aio as aio_module
from wxmiddleware.stores.aio import AsyncMemoryStore, AsyncSQLiteStore, open_async_store
from wxmiddleware.stores.base import PURGE_BATCH

pytestmark = pytest.mark.anyio

IDLE = 7200
AsyncStore = Union[AsyncMemoryStore, AsyncSQLiteStore]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncStore]:
    opened: AsyncStore = (
        AsyncMemoryStore() if request.param == "memory" else AsyncSQLiteStore(tmp_path / "s.db")
    )
    yield opened
    await opened.aclose()


def make_session(openid: str = "o-alice", max_age: float = 86400) -> WxSession:
    now = time.time()
    return WxSession(openid, "sk-" + new_token(), "u-1", now, now + max_age, SCOPE.appid)


async def test_purge_reports_progress_in_the_loop_thread(store: AsyncStore) -> None:
    for _ in range(PURGE_BATCH + 1):
        await store.save(new_token(), make_session(max_age=-1), IDLE, SCOPE)
    reports: List[Tuple[int, str]] = []
    loop_thread = threading.current_thread().name

    def progress(count: int) -> None:
        reports.append((count, threading.current_thread().name))

    assert await store.purge_expired(progress) == PURGE_BATCH + 1
    assert reports  # delivered before purge_expired returned
    assert reports[-1] == (PURGE_BATCH + 1, loop_thread)
    assert {thread for _, thread in reports} == {loop_thread}


async def test_memory_store_wraps_the_one_given() -> None:
    shared = MemoryStore()
    token = new_token()
    shared.save(token, make_session(), IDLE, SCOPE)
    assert await AsyncMemoryStore(shared).get(token, IDLE, SCOPE) is not None


class TestSQLiteOffTheLoop:
    @pytest.fixture
    async def sqlite_store(self, tmp_path: Path) -> AsyncIterator[AsyncSQLiteStore]:
        opened = AsyncSQLiteStore(SQLiteStore(tmp_path / "s.db", timeout=5.0))
        yield opened
        await opened.aclose()

    async def test_writes_run_on_the_loop_while_the_write_lock_is_free(
        self, sqlite_store: AsyncSQLiteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls: List[str] = []
        stores = {"sync": sqlite_store.sync, "inline": sqlite_store._inline}
        for label, store in stores.items():
            for name in ("_lookup", "_slide", "save", "claim_code"):
                method = getattr(store, name)

                def recording(
                    *args: object,
                    _name: str = f"{label}.{name}",
                    _method: Callable[..., object] = method,
                ) -> object:
                    calls.append(f"{_name} {threading.current_thread().name}")
                    return _method(*args)

                monkeypatch.setattr(store, name, recording)
        token = new_token()
        assert await sqlite_store.get(token, IDLE, SCOPE) is None  # opens the file: in the writer
        assert (await sqlite_store.claim_code(code_key("c"), 300)).state is ClaimState.OWNER
        await sqlite_store.save(token, make_session(), IDLE, SCOPE)
        assert await sqlite_store.get(token, IDLE, SCOPE) is not None
        assert (
            await sqlite_store.get(token, 2 * IDLE, SCOPE) is not None
        )  # slides the idle deadline
        loop = threading.current_thread().name
        assert calls[0].startswith("sync._lookup wxmiddleware-sqlite")
        assert calls[1:] == [
            f"inline.claim_code {loop}",
            f"inline.save {loop}",
            f"sync._lookup {loop}",
            f"sync._lookup {loop}",
            f"inline._slide {loop}",
        ]

    async def test_the_writer_thread_checkpoints_and_purges_for_the_inline_writes(
        self, sqlite_store: AsyncSQLiteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(aio_module, "MAINTAIN_EVERY", 3)
        expired = new_token()
        other = SQLiteStore(sqlite_store.sync.path)
        other.save(expired, make_session(max_age=-1), IDLE, SCOPE)  # already expired
        other.close()
        threads: List[str] = []
        maintain = sqlite_store.sync._maintain

        def recording() -> None:
            threads.append(threading.current_thread().name)
            maintain()

        monkeypatch.setattr(sqlite_store.sync, "_maintain", recording)
        await sqlite_store.get(new_token(), IDLE, SCOPE)  # opens the file
        for _ in range(3):
            await sqlite_store.save(new_token(), make_session(), IDLE, SCOPE)
        await sqlite_store.aclose()  # waits for the maintenance under way
        assert len(threads) == 1 and threads[0].startswith("wxmiddleware-sqlite")
        with sqlite3.connect(sqlite_store.sync.path) as conn:
            keys = {row[0] for row in conn.execute("SELECT key FROM wx_sessions")}
        assert token_key(expired) not in keys and len(keys) == 3

    async def test_value_and_lock_writes_run_in_the_writer_thread(
        self, sqlite_store: AsyncSQLiteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        threads: List[str] = []
        sync = sqlite_store.sync
        names = ("get_value", "set_value", "delete_value", "acquire_lock", "release_lock")
        for name in names:
            method = getattr(sync, name)

            def recording(
                *args: object, _name: str = name, _method: Callable[..., object] = method
            ) -> object:
                threads.append(f"{_name} {threading.current_thread().name}")
                return _method(*args)

            monkeypatch.setattr(sync, name, recording)
        await sqlite_store.set_value("v", "x", 60)  # opens the file in the writer
        assert await sqlite_store.get_value("v") == "x"
        owner = await sqlite_store.acquire_lock("l", 60)
        assert owner is not None
        assert await sqlite_store.release_lock("l", owner)
        assert await sqlite_store.delete_value("v")
        loop_thread = threading.current_thread().name
        on_loop = [entry for entry in threads if entry.endswith(" " + loop_thread)]
        assert on_loop == [f"get_value {loop_thread}"]  # a read: inline, like get's
        assert len(threads) == 5

    async def test_a_held_write_lock_never_stalls_the_loop(
        self, sqlite_store: AsyncSQLiteStore
    ) -> None:
        token = new_token()
        session = make_session()
        await sqlite_store.save(token, session, IDLE, SCOPE)
        await sqlite_store.get(token, IDLE, SCOPE)
        blocker = sqlite3.connect(sqlite_store.sync.path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another process's writer, mid-transaction
            writes = [
                asyncio.ensure_future(sqlite_store.save(new_token(), make_session(), IDLE, SCOPE)),
                asyncio.ensure_future(sqlite_store.claim_code(code_key("c"), 300)),
                asyncio.ensure_future(sqlite_store.get(token, 3 * IDLE, SCOPE)),  # needs a slide
            ]
            for _ in range(10):
                await asyncio.sleep(0.01)  # the loop keeps turning while they wait
            assert await sqlite_store.get(token, IDLE, SCOPE) == session  # reads answer meanwhile
            assert not any(write.done() for write in writes)
            blocker.execute("COMMIT")
        finally:
            blocker.close()
        results = await asyncio.gather(*writes)
        assert results[1].state is ClaimState.OWNER and results[2] == session

    async def test_a_lock_held_too_long_is_store_unavailable(self, tmp_path: Path) -> None:
        store = AsyncSQLiteStore(SQLiteStore(tmp_path / "s.db", timeout=0.05))
        await store.save(new_token(), make_session(), IDLE, SCOPE)
        blocker = sqlite3.connect(store.sync.path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailable):
                await store.save(new_token(), make_session(), IDLE, SCOPE)
        finally:
            blocker.close()
            await store.aclose()

    async def test_close_and_reuse(self, sqlite_store: AsyncSQLiteStore) -> None:
        token = new_token()
        await sqlite_store.save(token, make_session(), IDLE, SCOPE)
        await sqlite_store.aclose()
        assert await sqlite_store.get(token, IDLE, SCOPE) is not None
        await sqlite_store.delete(token)
        assert await sqlite_store.get(token, IDLE, SCOPE) is None


class TestOpenAsyncStore:
    def test_default_is_sqlite_under_xdg_state_home(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
        store = open_async_store(None, "wx123")
        assert isinstance(store, AsyncSQLiteStore)
        assert store.sync.path == tmp_path / "wxmiddleware" / "sessions-wx123.sqlite3"

    def test_urls(self, tmp_path: Path) -> None:
        store = open_async_store(f"sqlite:///{tmp_path}/s.db", "wx123")
        assert isinstance(store, AsyncSQLiteStore)
        assert store.sync.path == tmp_path / "s.db"
        assert isinstance(open_async_store("memory://", "wx123"), AsyncMemoryStore)

    @pytest.mark.parametrize("url", ["mongodb://h/db", "nothing", "sqlite://", "sqlite:///x?a=1"])
    def test_bad_urls(self, url: str) -> None:
        with pytest.raises(ConfigError):
            open_async_store(url, "wx123")

    def test_redis(self) -> None:
        pytest.importorskip("redis")
        store = open_async_store("redis://127.0.0.1:6379/0", "wx123")
        assert type(store).__name__ == "AsyncRedisStore"
