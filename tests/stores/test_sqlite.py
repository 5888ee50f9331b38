"""SQLiteStore beyond the contract: files, processes, locks across processes, failures, and
open_store."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.stores.support import SCOPE
from wxmiddleware.errors import ConfigError, StoreUnavailable
from wxmiddleware.session import ClaimState, WxSession, code_key, new_token, short_hash, token_key
from wxmiddleware.stores import MemoryStore, SQLiteStore, default_sqlite_path, open_store
from wxmiddleware.stores import _sqlite_db as sqlite_db
from wxmiddleware.stores import sqlite as sqlite_module
from wxmiddleware.stores.sqlite import SQLiteBusy

IDLE = 7200
JOIN_TIMEOUT = 60


def make_session(openid: str = "o-alice", session_key: str = "sk-value") -> WxSession:
    now = time.time()
    return WxSession(openid, session_key, None, now, now + 86400, SCOPE.appid)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "s.sqlite3"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(db)
    yield opened
    opened.close()


def database_bytes(db: Path) -> bytes:
    return b"".join(path.read_bytes() for path in db.parent.glob(db.name + "*") if path.is_file())


# --- workers for other processes (module level, so that spawn can import them) ---


def _child_share(path: str, token: str, queue: Any) -> None:
    store = SQLiteStore(path)
    found = store.get(token, IDLE, SCOPE)
    mine = new_token()
    store.save(mine, make_session("o-child"), IDLE, SCOPE)
    queue.put((found.openid if found else None, mine))


def _child_claim(path: str, key: str, barrier: Any, queue: Any) -> None:
    store = SQLiteStore(path)
    barrier.wait()
    queue.put(store.claim_code(key, 300).state.value)


def _child_after_fork(store: SQLiteStore, token: str, queue: Any) -> None:
    found = store.get(token, IDLE, SCOPE)
    mine = new_token()
    store.save(mine, make_session("o-child"), IDLE, SCOPE)
    queue.put((found.openid if found else None, mine))


def _run(process: Any) -> None:
    process.start()
    process.join(JOIN_TIMEOUT)
    assert process.exitcode == 0


# --- files ---


def test_creates_directory_schema_and_wal(store: SQLiteStore, db: Path) -> None:
    assert not db.parent.exists()
    store.save(new_token(), make_session(), IDLE, SCOPE)
    assert db.is_file()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_survives_restart(db: Path) -> None:
    token = new_token()
    session = make_session()
    first = SQLiteStore(db)
    first.save(token, session, IDLE, SCOPE)
    first.close()
    second = SQLiteStore(db)
    assert second.get(token, IDLE, SCOPE) == session
    assert second.sessions_for("o-alice")[0].key_hash == short_hash(token_key(token))
    second.close()


def test_database_holds_no_token_in_clear(store: SQLiteStore, db: Path) -> None:
    tokens = [new_token() for _ in range(5)]
    for token in tokens:
        store.save(token, make_session(session_key="sk-marker"), IDLE, SCOPE)
        store.get(token, IDLE, SCOPE)

    def check(content: bytes) -> None:
        assert b"sk-marker" not in content  # session_keys are sealed
        for token in tokens:
            assert token_key(token).encode() in content  # the check reads the rows
            assert token.encode() not in content

    check(database_bytes(db))  # the rows are still in the WAL file
    store.close()
    check(database_bytes(db))  # checkpointed into the main file


def test_maintenance_purges_once_per_interval_in_the_background(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])

    def rows() -> int:
        conn = sqlite3.connect(store.path)
        try:
            return int(conn.execute("SELECT count(*) FROM wx_sessions").fetchone()[0])
        finally:
            conn.close()

    store.save(new_token(), make_session(), 5, SCOPE)  # starts the maintenance thread
    now[0] += 10
    store.save(new_token(), make_session(), 5, SCOPE)
    time.sleep(1.5)  # the thread looks at least once a second
    assert rows() == 2  # both expired, but the first purge is PURGE_INTERVAL away
    now[0] += sqlite_module.PURGE_INTERVAL
    store.save(new_token(), make_session(), IDLE, SCOPE)
    deadline = time.monotonic() + 10
    while rows() != 1:  # the thread's next look purges the two
        assert time.monotonic() < deadline, "the maintenance thread did not purge"
        time.sleep(0.05)


# --- processes ---


def test_two_processes_share_sessions(store: SQLiteStore) -> None:
    token = new_token()
    store.save(token, make_session(), IDLE, SCOPE)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    _run(ctx.Process(target=_child_share, args=(str(store.path), token, queue)))
    found, child_token = queue.get(timeout=5)
    assert found == "o-alice"
    child_session = store.get(child_token, IDLE, SCOPE)
    assert child_session is not None and child_session.openid == "o-child"


def test_claim_code_race_across_processes(db: Path) -> None:
    # A fresh file: the processes also race to create the schema and switch to WAL.
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(8)
    key = code_key("raced-code")
    processes = [
        ctx.Process(target=_child_claim, args=(str(db), key, barrier, queue)) for _ in range(8)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(JOIN_TIMEOUT)
        assert process.exitcode == 0
    results = [ClaimState(queue.get(timeout=5)) for _ in processes]
    assert results.count(ClaimState.OWNER) == 1
    assert results.count(ClaimState.PENDING) == 7


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_store_created_before_fork_works_in_child(store: SQLiteStore) -> None:
    token = new_token()
    store.save(token, make_session(), IDLE, SCOPE)  # the parent has used the store before forking
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    _run(ctx.Process(target=_child_after_fork, args=(store, token, queue)))
    found, child_token = queue.get(timeout=5)
    assert found == "o-alice"
    assert store.get(token, IDLE, SCOPE) is not None
    child_session = store.get(child_token, IDLE, SCOPE)
    assert child_session is not None and child_session.openid == "o-child"


def test_connection_from_another_process_is_replaced_not_closed(store: SQLiteStore) -> None:
    # What a fork that bypasses os.register_at_fork hooks leaves behind.
    token = new_token()
    store.save(token, make_session(), IDLE, SCOPE)
    local: Any = store._db.local
    inherited = local.conn
    local.pid = -1
    assert store.get(token, IDLE, SCOPE) is not None
    assert local.conn is not inherited
    assert sqlite_db.INHERITED[-1] is inherited
    sqlite_db.INHERITED.remove(inherited)
    inherited.close()


# --- locks across processes (every process on the machine) ---


def _child_take_lock(path: str, barrier: Any, hold: float, queue: Any) -> None:
    store = SQLiteStore(path)
    barrier.wait()
    owner = store.acquire_lock("refresh", 30)
    queue.put(owner is not None)
    if owner is not None:
        time.sleep(hold)  # the others try while it is held
        store.release_lock("refresh", owner)
    store.close()


def _child_take_lock_and_die(path: str, ttl: float, queue: Any) -> None:
    store = SQLiteStore(path)
    queue.put(store.acquire_lock("refresh", ttl))
    queue.close()
    queue.join_thread()  # the answer is on its way before the process dies
    os._exit(0)  # no release, no cleanup: a crashed worker


def test_sqlite_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(6)
    path = str(tmp_path / "s.sqlite3")  # a fresh file: the processes race to create it too
    processes = [
        ctx.Process(target=_child_take_lock, args=(path, barrier, 1.0, queue)) for _ in range(6)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    assert sorted(queue.get(timeout=5) for _ in processes) == [False] * 5 + [True]
    store = SQLiteStore(path)
    owner = store.acquire_lock("refresh", 30)  # released by its holder
    assert owner is not None
    store.close()


def test_sqlite_lock_of_a_dead_process_expires(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    path = str(tmp_path / "s.sqlite3")
    child = ctx.Process(target=_child_take_lock_and_die, args=(path, 1.0, queue))
    child.start()
    child.join(60)
    assert queue.get(timeout=5) is not None
    store = SQLiteStore(path)
    assert store.acquire_lock("refresh", 30) is None
    deadline = time.monotonic() + 5
    while store.acquire_lock("refresh", 30) is None:
        assert time.monotonic() < deadline, "the dead process's lock never expired"
        time.sleep(0.05)
    store.close()


def test_sqlite_failures_are_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = SQLiteStore(blocker / "s.sqlite3")
    for call in (
        lambda: store.revoke_session("o-alice", "0123456789ab"),
        lambda: store.purge_expired(),
        lambda: store.get_value("v"),
        lambda: store.set_value("v", "x", 60),
        lambda: store.delete_value("v"),
        lambda: store.acquire_lock("l", 60),
        lambda: store.release_lock("l", "owner"),
    ):
        with pytest.raises(StoreUnavailable) as info:
            call()
        assert info.value.status == 503 and str(blocker) in (info.value.detail or "")


# --- the parsed-session cache ---


def test_cached_session_ends_when_another_store_deletes_it(store: SQLiteStore, db: Path) -> None:
    other = SQLiteStore(db)  # as another worker process would see the file
    token = new_token()
    store.save(token, make_session(), IDLE, SCOPE)
    assert store.get(token, IDLE, SCOPE) is not None  # parsed and cached
    assert other.delete(token)
    assert store.get(token, IDLE, SCOPE) is None
    second = new_token()
    store.save(second, make_session(), IDLE, SCOPE)
    assert store.get(second, IDLE, SCOPE) is not None
    assert other.revoke_all("o-alice", SCOPE) == 1
    assert store.get(second, IDLE, SCOPE) is None
    other.close()


def test_cached_session_follows_a_replaced_row(store: SQLiteStore, db: Path) -> None:
    other = SQLiteStore(db)
    token = new_token()
    store.save(token, make_session(session_key="sk-first"), IDLE, SCOPE)
    first = store.get(token, IDLE, SCOPE)
    assert first is not None and first.session_key == "sk-first"
    other.save(token, make_session(session_key="sk-second"), IDLE, SCOPE)
    again = store.get(token, IDLE, SCOPE)
    assert again is not None and again.session_key == "sk-second"
    other.close()


def test_cached_session_still_expires(store: SQLiteStore) -> None:
    token = new_token()
    now = time.time()
    store.save(token, WxSession("o-alice", "sk", None, now, now + 0.3), IDLE, SCOPE)
    assert store.get(token, IDLE, SCOPE) is not None
    time.sleep(0.4)
    assert store.get(token, IDLE, SCOPE) is None


def test_cache_is_bounded(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "RECENT_SESSIONS", 3)
    tokens = [new_token() for _ in range(5)]
    for token in tokens:
        store.save(token, make_session(), IDLE, SCOPE)
        assert store.get(token, IDLE, SCOPE) is not None
    assert len(store._recent) == 3
    assert list(store._recent) == tokens[2:]  # the oldest went first
    assert all(store.get(token, IDLE, SCOPE) is not None for token in tokens)


# --- failures ---


def assert_unavailable(
    excinfo: pytest.ExceptionInfo[StoreUnavailable], store: SQLiteStore, *secrets: str
) -> None:
    error = excinfo.value
    # The client sees a generic message; the operator's log line gets the cause and path.
    assert str(store.path) not in error.message
    assert error.detail is not None and str(store.path) in error.detail
    for secret in secrets:
        assert secret not in error.message and secret not in error.detail
    assert error.status == 503


def test_locked_database_is_unavailable(store: SQLiteStore, db: Path) -> None:
    token = new_token()
    store.save(token, make_session(session_key="sk-secret"), IDLE, SCOPE)
    locked = SQLiteStore(db, timeout=0.05)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        other = new_token()
        # SQLiteBusy: a StoreUnavailable that says nothing was written.
        with pytest.raises(SQLiteBusy) as excinfo:
            locked.save(other, make_session(session_key="sk-secret"), IDLE, SCOPE)
        assert_unavailable(excinfo, locked, other, token_key(other), "sk-secret")
        detail = excinfo.value.detail or ""
        assert "OperationalError" in detail and short_hash(token_key(other)) in detail
        with pytest.raises(SQLiteBusy):
            locked.claim_code(code_key("c"), 300)
        # WAL readers are not blocked by a writer.
        assert locked.get(token, IDLE, SCOPE) is not None
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        locked.close()
    assert locked.claim_code(code_key("c"), 300).state is ClaimState.OWNER


def test_path_under_a_file_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = SQLiteStore(blocker / "s.sqlite3")
    token = new_token()
    with pytest.raises(StoreUnavailable) as excinfo:
        store.get(token, IDLE, SCOPE)
    assert_unavailable(excinfo, store, token, token_key(token))
    with pytest.raises(StoreUnavailable):
        store.save(token, make_session(), IDLE, SCOPE)


def test_path_that_is_a_directory_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    with pytest.raises(StoreUnavailable) as excinfo:
        store.get(new_token(), IDLE, SCOPE)
    assert "is not a file" in (excinfo.value.detail or "")


def test_corrupt_file_is_unavailable(tmp_path: Path) -> None:
    db = tmp_path / "corrupt.sqlite3"
    db.write_bytes(b"this is not a database file, just some bytes" * 100)
    store = SQLiteStore(db)
    token = new_token()
    with pytest.raises(StoreUnavailable) as excinfo:
        store.get(token, IDLE, SCOPE)
    assert "DatabaseError" in (excinfo.value.detail or "")
    assert not isinstance(excinfo.value, SQLiteBusy)  # not worth another try elsewhere
    assert_unavailable(excinfo, store, token, token_key(token))


# --- open_store and default_sqlite_path ---


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg-state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


def test_default_sqlite_path_honours_xdg_state_home(state_home: Path) -> None:
    assert default_sqlite_path("wx0123456789abcdef") == (
        state_home / "wxmiddleware" / "sessions-wx0123456789abcdef.sqlite3"
    )


def test_default_sqlite_path_falls_back_to_local_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for value in (None, "", "relative/state"):
        if value is None:
            monkeypatch.delenv("XDG_STATE_HOME", raising=False)
        else:
            monkeypatch.setenv("XDG_STATE_HOME", value)
        assert default_sqlite_path("wx1") == (
            tmp_path / ".local" / "state" / "wxmiddleware" / "sessions-wx1.sqlite3"
        )


def test_default_sqlite_path_sanitises_appid(state_home: Path) -> None:
    path = default_sqlite_path("../wx 1/é")
    assert path.parent == state_home / "wxmiddleware"
    assert path.name == "sessions-___wx_1__.sqlite3"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_default_store_is_private_to_its_user(state_home: Path) -> None:
    """Issue 17: directory 0700, database, -wal and -shm 0600 (another local account would
    otherwise read every session's record)."""
    store = open_store(None, "wx1")
    assert isinstance(store, SQLiteStore)
    assert store.path == state_home / "wxmiddleware" / "sessions-wx1.sqlite3"
    # Every directory it made: wxmiddleware and the state home above it.
    assert mode(store.path.parent) == mode(state_home) == 0o700
    assert mode(store.path) == 0o600  # created at start-up, before any connection
    store.save(new_token(), make_session(), IDLE, SCOPE)
    files = [store.path, *(Path(f"{store.path}{suffix}") for suffix in ("-wal", "-shm"))]
    assert [mode(path) for path in files] == [0o600] * 3
    store.close()


def test_a_store_file_readable_by_others_is_made_private(state_home: Path) -> None:
    path = default_sqlite_path("wx1")
    path.parent.mkdir(parents=True, mode=0o700)
    path.touch(mode=0o644)
    path.chmod(0o644)  # as an older version left it
    open_store(None, "wx1")
    assert mode(path) == 0o600


@pytest.mark.parametrize(("what", "bits"), [("directory", 0o777), ("file", 0o666)])
def test_a_store_others_can_write_is_refused_at_start_up(
    state_home: Path, what: str, bits: int
) -> None:
    path = default_sqlite_path("wx1")
    path.parent.mkdir(parents=True, mode=0o700)
    path.touch()
    (path.parent if what == "directory" else path).chmod(bits)
    with pytest.raises(ConfigError, match=f"other users can write the {what}"):
        open_store(None, "wx1")
    with pytest.raises(ConfigError):
        open_store(f"sqlite:///{path}", "wx1")


def test_a_store_owned_by_another_user_is_refused(state_home: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("giving a file to another user needs root")
    path = default_sqlite_path("wx1")
    path.parent.mkdir(parents=True, mode=0o700)
    path.touch(mode=0o600)
    os.chown(path, 4242, 4242)  # planted by another account
    with pytest.raises(ConfigError, match=f"the file {path} belongs to another user"):
        open_store(None, "wx1")


def test_an_unusable_default_path_fails_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: a service user whose home cannot be created gets a ConfigError naming the
    path when the store is opened, not a 503 at every request."""
    blocker = tmp_path / "no-home"
    blocker.write_text("")
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(blocker / "home"))
    with pytest.raises(ConfigError) as excinfo:
        open_store(None, "wx1")
    assert str(blocker / "home") in str(excinfo.value)
    with pytest.raises(ConfigError, match="is not a file"):
        open_store(f"sqlite:///{tmp_path}", "wx1")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///rel/s.sqlite3", "rel/s.sqlite3"),
        ("sqlite:///s.sqlite3", "s.sqlite3"),
        ("SQLite:///s.sqlite3", "s.sqlite3"),
    ],
)
def test_open_store_sqlite_relative(
    url: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(url, "wx1")
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / expected
    monkeypatch.chdir("/")  # resolved when opened, not when first used
    assert store.path == tmp_path / expected


def test_open_store_sqlite_absolute(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/abs.sqlite3", "wx1")
    assert str(tmp_path).startswith("/")
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "abs.sqlite3"


def test_open_store_memory() -> None:
    assert isinstance(open_store("memory://", "wx1"), MemoryStore)


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///", "sqlite://host/s.sqlite3", "sqlite:///s.db?mode=ro"]
)
def test_open_store_rejects_malformed_sqlite_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="sqlite:///relative/path"):
        open_store(url, "wx1")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mongodb://admin:hunter2@db/sessions", "'mongodb'"),
        ("/var/lib/hunter2.sqlite3", "no scheme"),
        ("hunter2", "no scheme"),
    ],
)
def test_open_store_unknown_scheme_names_only_the_scheme(url: str, shown: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        open_store(url, "wx1")
    message = str(excinfo.value)
    assert shown in message
    assert "hunter2" not in message


def test_open_store_empty_url_is_the_default(state_home: Path) -> None:
    store = open_store("", "wx1")
    assert isinstance(store, SQLiteStore)
    assert store.path.parent == state_home / "wxmiddleware"


def test_a_thread_starts_on_a_fresh_connection_after_a_sqlite_error(tmp_path: Path) -> None:
    db = tmp_path / "dropped.sqlite3"
    store = SQLiteStore(db)
    token = new_token()
    store.save(token, make_session(), IDLE, SCOPE)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("DROP TABLE wx_sessions")
    other.close()
    with pytest.raises(StoreUnavailable) as excinfo:
        store.get(token, IDLE, SCOPE)
    if sys.version_info >= (3, 11):
        assert "(SQLITE_ERROR)" in (excinfo.value.detail or "")
    assert store.get(token, IDLE, SCOPE) is None
    store.save(token, make_session(), IDLE, SCOPE)
    assert store.get(token, IDLE, SCOPE) is not None
    store.close()


def test_creating_the_file_never_opens_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Closing any descriptor of the database file drops the POSIX locks that this process's
    # other connections hold on it; the store links a private file into place instead.
    db = tmp_path / "fresh.sqlite3"
    opened: list[str] = []
    real_open = os.open

    def recording_open(name: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(os.fspath(name))
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(sqlite_db.os, "open", recording_open)
    sqlite_db.Database(db, 5.0, True).prepare()
    monkeypatch.undo()
    assert opened and str(db) not in opened
    assert db.is_file() and db.stat().st_size == 0
    if os.name == "posix":
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fresh.sqlite3"]


def test_a_database_name_near_the_file_system_limit_is_created(tmp_path: Path) -> None:
    # The private file made first and linked into place has a short name of its own.
    db = tmp_path / ("s" * 240 + ".db")
    store = SQLiteStore(db)
    token = new_token()
    store.save(token, make_session(), IDLE, SCOPE)
    assert store.get(token, IDLE, SCOPE) is not None
    store.close()
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".new")]
