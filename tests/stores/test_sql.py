"""What the SQL stores promise beyond the store contract (tests/stores/test_contract.py).

Against the real PostgreSQL and MariaDB servers (tests/sql_support.py): what the tables hold
(no token, no session_key, no code), one statement per authenticated request, races between
machines decided by the database (code claims, the lock), batched expiry that spares live
rows while another machine writes, a dropped connection recovered without a 503, a server
that does not answer giving 503 within the timeout, a server frozen under traffic (a
private one, SIGSTOP) giving 503s and then serving again through the same store, start-up
errors (driver, schema, URL) as ConfigErrors, and no credentials in any error or log line.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Tuple

import pytest

from tests.sql_support import (
    MYSQL_URL,
    PG_URL,
    URLS,
    answering,
    drop_tables,
    private_mariadb,
    private_postgresql,
    sql_module,
    sql_store,
    unique_prefix,
)
from tests.stores.support import IDLE, SCOPE, Blocking, make_session
from wxmiddleware.errors import ConfigError, StoreUnavailable
from wxmiddleware.session import (
    ClaimState,
    code_key,
    new_token,
    seal_token,
    short_hash,
    token_key,
)

sa = pytest.importorskip("sqlalchemy")

DIALECTS = ["postgresql", "mysql"]
KINDS = ["postgresql", "mysql", "async-postgresql", "async-mysql"]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    with sql_store(request.param) as opened:
        yield opened


def _sync_twin(store: Any) -> Any:
    """A sync store on the same database and tables (another machine, as far as the
    database can tell)."""
    inner = store.store if isinstance(store, Blocking) else store
    url = PG_URL if "postgresql" in repr(inner) else MYSQL_URL
    return sql_module().SQLStore.from_url(url, table_prefix=inner.table_prefix)


def _dump(store: Any) -> str:
    twin = _sync_twin(store)
    try:
        with twin.engine.connect() as conn:
            rows: List[str] = []
            for name in ("sessions", "codes", "values", "locks"):
                table = f"{twin.table_prefix}{name}"
                rows += [repr(tuple(row)) for row in conn.exec_driver_sql(f"SELECT * FROM {table}")]
    finally:
        twin.close()
    return "\n".join(rows)


def test_tables_hold_no_token_no_session_key_no_code(store: Any) -> None:
    code = "code-in-clear"
    key = code_key(code)
    assert store.claim_code(key, 300).state is ClaimState.OWNER
    token = new_token()
    session = make_session(session_key="sk-must-stay-sealed", unionid="u-1")
    store.save(token, session, IDLE, SCOPE, code_key=key, sealed_token=seal_token(code, token))
    assert store.get(token, IDLE, SCOPE).session_key == "sk-must-stay-sealed"
    dump = _dump(store)
    assert token_key(token) in dump  # sessions are keyed by the digest
    for secret in (token, "sk-must-stay-sealed", code):
        assert secret not in dump


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_authenticated_request_is_one_indexed_read(dialect: str) -> None:
    with sql_store(dialect) as store:
        token = new_token()
        store.save(token, make_session(), IDLE, SCOPE)
        statements: List[str] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        sa.event.listen(store.engine, "before_cursor_execute", record)
        for _ in range(5):
            assert store.get(token, IDLE, SCOPE) is not None
        sa.event.remove(store.engine, "before_cursor_execute", record)
        assert len(statements) == 5
        assert all(s.lstrip().upper().startswith("SELECT") for s in statements)
        table = f"{store.table_prefix}sessions"
        with store.engine.connect() as conn:
            if dialect == "postgresql":
                plan = conn.exec_driver_sql(
                    f"EXPLAIN SELECT * FROM {table} WHERE key = %(k)s", {"k": token_key(token)}
                ).fetchall()
                assert "Index Scan" in str(plan) or "Index Only Scan" in str(plan), plan
            else:
                plan = conn.exec_driver_sql(
                    f"EXPLAIN SELECT * FROM {table} WHERE `key` = %s", (token_key(token),)
                ).fetchall()
                assert "PRIMARY" in str(plan), plan


@pytest.mark.parametrize("dialect", DIALECTS)
def test_concurrent_claims_of_one_code_across_machines_make_one_owner(dialect: str) -> None:
    sql = sql_module()
    prefix = unique_prefix()
    machines = [sql.SQLStore.from_url(URLS[dialect], table_prefix=prefix) for _ in range(4)]
    try:
        machines[0].check()
        for attempt in range(5):
            key = code_key(f"race-{attempt}")
            barrier = threading.Barrier(8)
            claims: List[ClaimState] = []

            def claim(
                machine: Any, key: str = key, barrier: Any = barrier, claims: Any = claims
            ) -> None:
                barrier.wait()
                claims.append(machine.claim_code(key, 300).state)

            threads = [threading.Thread(target=claim, args=(m,)) for m in machines * 2]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(c.value for c in claims) == ["owner"] + ["pending"] * 7
    finally:
        for machine in machines:
            machine.close()
        drop_tables(URLS[dialect], prefix)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_concurrent_lock_acquisitions_make_one_owner(dialect: str) -> None:
    sql = sql_module()
    prefix = unique_prefix()
    machines = [sql.SQLStore.from_url(URLS[dialect], table_prefix=prefix) for _ in range(4)]
    try:
        machines[0].check()
        for attempt in range(5):
            barrier = threading.Barrier(8)
            owners: List[Any] = []

            def acquire(
                machine: Any,
                name: str = f"lock-{attempt}",
                barrier: Any = barrier,
                owners: Any = owners,
            ) -> None:
                barrier.wait()
                owners.append(machine.acquire_lock(name, 30))

            threads = [threading.Thread(target=acquire, args=(m,)) for m in machines * 2]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len([owner for owner in owners if owner]) == 1, owners
    finally:
        for machine in machines:
            machine.close()
        drop_tables(URLS[dialect], prefix)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_batched_purge_spares_live_rows_while_another_machine_writes(dialect: str) -> None:
    with sql_store(dialect) as store:
        store.check()
        other = _sync_twin(store)
        other.purge_expired()  # so that its logins purge nothing inline for a minute
        expired = 2500
        table = store._operations.t.sessions
        now = time.time()
        rows = [
            {
                "key": token_key(f"expired-{index}"),
                "appid": SCOPE.appid,
                "openid": f"o-{index % 50}",
                "unionid": None,
                "sealed_key": "x",
                "key_at": now - 100,
                "created_at": now - 100,
                "expires_at": now + 1000,
                "idle_until": now - 1,
            }
            for index in range(expired)
        ]
        with store.engine.connect() as conn:
            conn.execute(table.insert(), rows)
        written: List[str] = []
        stop = threading.Event()

        def write() -> None:
            while not stop.is_set():
                token = new_token()
                other.save(token, make_session(openid=f"o-{len(written) % 50}"), IDLE, SCOPE)
                written.append(token)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            reports: List[int] = []
            assert store.purge_expired(reports.append) == expired
        finally:
            stop.set()
            writer.join()
            other.close()
        assert len(reports) >= 3 and reports[-1] == expired
        assert written
        for token in written:
            assert store.get(token, IDLE, SCOPE) is not None
        with store.engine.connect() as conn:
            left = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
        assert left == len(written)


def test_a_dropped_connection_is_replaced_without_a_503() -> None:
    with sql_store("postgresql", connect_args={"application_name": "wxtest-drop"}) as store:
        token = new_token()
        store.save(token, make_session(), IDLE, SCOPE)
        assert store.get(token, IDLE, SCOPE) is not None  # a pooled connection now exists
        with sa.create_engine(
            PG_URL.replace("postgresql:", "postgresql+psycopg:")
        ).connect() as admin:
            killed = admin.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'wxtest-drop'"
            ).fetchall()
        assert killed
        assert store.get(token, IDLE, SCOPE) is not None  # retried on a new connection


@pytest.mark.parametrize("kind", KINDS)
def test_a_database_that_does_not_answer_is_503_within_the_timeout(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.e2e.servers import free_port

    sql = sql_module()
    scheme = "postgresql" if "postgresql" in kind else "mysql"
    url = f"{scheme}://user:pw-in-url@127.0.0.1:{free_port()}/test"
    store = (
        Blocking(sql.AsyncSQLStore.from_url(url))
        if kind.startswith("async")
        else sql.SQLStore.from_url(url)
    )
    try:
        for call in (
            lambda: store.get(new_token(), IDLE, SCOPE),
            lambda: store.claim_code(code_key("c"), 300),
        ):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as failure:
                call()
            assert time.monotonic() - started < 3
            assert scheme in failure.value.detail
            assert "pw-in-url" not in failure.value.detail
    finally:
        store.close()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_open_store_checks_the_schema_and_names_the_fix(dialect: str) -> None:
    from wxmiddleware.stores import open_store

    url = URLS[dialect]
    answering(url)
    prefix = unique_prefix()
    with sql_module().SQLStore.from_url(url, create_schema=False).engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {prefix}sessions (id INTEGER PRIMARY KEY)")
    try:
        store = sql_module().SQLStore.from_url(url, table_prefix=prefix)
        with pytest.raises(ConfigError) as failure:
            store.check()
        store.close()
        message = str(failure.value)
        assert f"{prefix}sessions" in message and "openid" in message
        assert "wxmiddleware store init" in message
        with pytest.raises(ConfigError):
            sql_module().SQLStore.from_url(url, table_prefix=prefix, create_schema=False).check()
    finally:
        drop_tables(url, prefix)
    opened = open_store(url, "wx-app")
    try:
        assert type(opened).__name__ == "SQLStore"
    finally:
        opened.close()


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql+pg8000://u:secret-pw@db/app", "pg8000"),
        ("mysql+mysqlconnector://u:secret-pw@db/app", "mysqlconnector"),
        ("mysql+asyncmy://u:secret-pw@db/app", "asyncmy"),
    ],
)
def test_a_driver_that_is_not_installed_is_a_config_error(url: str, named: str) -> None:
    from wxmiddleware.stores import open_store
    from wxmiddleware.stores.aio import open_async_store

    sql_module()
    opener = open_async_store if "asyncmy" in url else open_store
    with pytest.raises(ConfigError) as failure:
        opener(url, "wx-app")
    message = str(failure.value)
    assert named in message and "pip install" in message
    assert "secret-pw" not in message


def test_bad_urls_and_other_databases_are_config_errors() -> None:
    from wxmiddleware.stores import open_store

    sql_module()
    for url, expected in [
        ("postgresql://u:secret-pw@db:notaport/app", "malformed"),
        ("mssql://u:secret-pw@db/app", "unsupported"),
    ]:
        with pytest.raises(ConfigError) as failure:
            open_store(url, "wx-app")
        assert expected in str(failure.value)
        assert "secret-pw" not in str(failure.value)
    with pytest.raises(ConfigError, match="table_prefix"):
        sql_module().SQLStore.from_url(PG_URL, table_prefix="wx; DROP TABLE x")
    assert type(open_store("sqlite:///s.sqlite3", "wx")).__name__ == "SQLiteStore"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_refused_credentials_never_reach_an_error_or_a_log_line(
    dialect: str, caplog: pytest.LogCaptureFixture
) -> None:
    from wxmiddleware.stores import open_store

    answering(URLS[dialect])
    host = URLS[dialect].split("@", 1)[1]
    # MariaDB refuses a password for a user without one; PostgreSQL a user that does not exist.
    user = "root" if dialect == "mysql" else "wx-nobody"
    url = f"{dialect}://{user}:very-secret-pw@{host}"
    caplog.set_level(logging.DEBUG)
    store = open_store(url, "wx-app")  # the database refuses: a warning, the app starts
    try:
        with pytest.raises(StoreUnavailable) as failure:
            store.get(new_token(), IDLE, SCOPE)
        shown = failure.value.detail + str(failure.value) + repr(store)
    finally:
        store.close()
    assert "very-secret-pw" not in shown + caplog.text
    assert "did not answer at start-up" in caplog.text


def test_store_init_creates_the_schema_and_prints_the_ddl() -> None:
    answering(PG_URL)
    prefix = unique_prefix()
    command = [sys.executable, "-m", "wxmiddleware", "store", "init", "--store", PG_URL]
    try:
        shown = subprocess.run(
            [*command, "--table-prefix", prefix, "--print"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        assert f"CREATE TABLE IF NOT EXISTS {prefix}sessions" in shown.stdout
        assert f"CREATE INDEX IF NOT EXISTS {prefix}sessions_idle_until" in shown.stdout
        with sql_module().SQLStore.from_url(PG_URL).engine.connect() as conn:
            assert prefix + "sessions" not in sa.inspect(conn).get_table_names()
        made = subprocess.run(
            [*command, "--table-prefix", prefix], capture_output=True, text=True, timeout=60
        )
        assert made.returncode == 0, made.stderr
        store = sql_module().SQLStore.from_url(PG_URL, table_prefix=prefix, create_schema=False)
        store.check()
        store.close()
    finally:
        drop_tables(PG_URL, prefix)


def test_importing_the_core_or_the_stores_loads_no_sqlalchemy() -> None:
    code = (
        "import sys, wxmiddleware.core, wxmiddleware.stores, wxmiddleware.stores.aio;"
        " print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_login_whose_rekey_loses_a_deadlock_runs_it_again(dialect: str) -> None:
    from wxmiddleware.stores._sql_steps import DEADLOCK_ATTEMPTS, Deadlock

    with sql_store(dialect) as store:
        operations = store._operations
        operations._next_purge = time.time() + 60
        steps = operations.save(new_token(), make_session(), IDLE, SCOPE)
        insert = next(steps)
        rekey = steps.send(1)
        for _ in range(DEADLOCK_ATTEMPTS - 1):
            assert steps.throw(Deadlock("OperationalError")) is rekey
        listed = steps.send(1)
        assert listed.statement is operations.t.user_sessions
        assert insert.statement is operations.t.insert_session
        with pytest.raises(StopIteration):
            steps.send([])

        steps = operations.save(new_token(), make_session(), IDLE, SCOPE)
        next(steps)
        steps.send(1)
        for _ in range(DEADLOCK_ATTEMPTS - 1):
            steps.throw(Deadlock("OperationalError"))
        with pytest.raises(Deadlock):
            steps.throw(Deadlock("OperationalError"))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_login_whose_inline_purge_keeps_losing_deadlocks_still_saves(dialect: str) -> None:
    from wxmiddleware.stores._sql_steps import DEADLOCK_ATTEMPTS, Deadlock, Steps

    # A login's inline purge batch never fails the login, deadlocks included.

    with sql_store(dialect) as store:
        operations = store._operations
        operations._next_purge = 0.0  # this login runs the inline purge batch first
        steps = Steps(operations.save(new_token(), make_session(), IDLE, SCOPE), "save", dialect)
        next(steps)  # the SELECT of expired session keys
        steps.reply = [("an-expired-key",)]
        delete = next(steps)
        assert str(delete.statement).startswith("DELETE")
        for _ in range(DEADLOCK_ATTEMPTS - 1):
            steps._error = Deadlock("OperationalError")  # what Steps.answering records
            assert next(steps) is delete  # run again
        steps._error = Deadlock("OperationalError")
        # The purge gave up: the login goes on to its INSERT (the failure is only logged).
        following = next(steps)
        assert following.statement is operations.t.insert_session


@pytest.fixture(scope="module")
def own_postgresql() -> Iterator[Any]:
    """A PostgreSQL of this module's own, which a test may freeze."""
    sql_module()
    with private_postgresql() as server:
        yield server


@pytest.fixture(scope="module")
def own_mariadb() -> Iterator[Any]:
    """A MariaDB of this module's own, which a test may freeze."""
    sql_module()
    with private_mariadb() as server:
        yield server


@contextmanager
def _caller(store: Any) -> Iterator[Callable[[Callable[[], Any]], Any]]:
    """How a thread calls ``store``: directly when it is synchronous; an asynchronous store
    runs on an event loop in a thread of its own, each call waited for 60 s at most (a
    hang fails the test rather than blocking it)."""
    if not store.asynchronous:
        yield lambda call: call()
        return
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()

    def run(call: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(call(), loop).result(60)

    async def close() -> None:
        gc.collect()  # a connect cut short by its deadline leaves a cycle: close it on its loop
        await store.aclose()

    try:
        yield run
    finally:
        asyncio.run_coroutine_threadsafe(close(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        runner.join(60)
        loop.close()


def _login(call: Callable[[Callable[[], Any]], Any], store: Any) -> str:
    """A login as the middleware makes it: the code claimed, the session saved with the code
    record's completion (one transaction); returns the token."""
    code = "code-" + new_token()
    key = code_key(code)
    assert call(lambda: store.claim_code(key, 300)).state is ClaimState.OWNER
    token = new_token()
    sealed = seal_token(code, token)
    session = make_session(openid="o-" + new_token())  # its own user: no cap evicts it
    call(lambda: store.save(token, session, IDLE, SCOPE, code_key=key, sealed_token=sealed))
    return token


def _round(call: Callable[[Callable[[], Any]], Any], store: Any, token: str) -> None:
    """A lookup of ``token``'s session, and a login whose session is then looked up."""
    assert call(lambda: store.get(token, IDLE, SCOPE)) is not None
    assert call(lambda: store.get(_login(call, store), IDLE, SCOPE)) is not None


@pytest.mark.parametrize("kind", KINDS)
def test_a_frozen_database_under_traffic_is_503_then_serves_again(
    kind: str, request: pytest.FixtureRequest
) -> None:
    # SIGSTOP: the server's kernel still completes connections and acknowledges queries,
    # so only the client-side deadlines end the waits (libpq and aiomysql have no read
    # timeout of their own).
    server = request.getfixturevalue("own_postgresql" if "postgresql" in kind else "own_mariadb")
    sql = sql_module()
    prefix = unique_prefix()
    factory = sql.AsyncSQLStore if kind.startswith("async") else sql.SQLStore
    store = factory.from_url(server.url(), table_prefix=prefix)
    store.check()
    try:
        with _caller(store) as call:
            token = _login(call, store)
            # (started, ended, outcome) of each store call the traffic made
            calls: List[Tuple[float, float, str]] = []
            stop = threading.Event()

            def traffic() -> None:
                operations = [
                    lambda: store.get(token, IDLE, SCOPE),
                    lambda: store.claim_code(code_key("code-" + new_token()), 300),
                    lambda: store.revoke_session("o-alice", short_hash(token_key(new_token()))),
                    lambda: store.acquire_lock("wx-freeze-" + new_token(), 30),
                ]
                for operation in itertools.cycle(operations):
                    if stop.is_set():
                        return
                    started = time.monotonic()
                    try:
                        call(operation)
                        outcome = "ok"
                    except StoreUnavailable:
                        outcome = "503"
                    except Exception as exc:  # recorded, and fails the test
                        outcome = repr(exc)
                    calls.append((started, time.monotonic(), outcome))

            workers = [threading.Thread(target=traffic) for _ in range(4)]
            for worker in workers:
                worker.start()
            try:
                time.sleep(0.5)
                server.freeze()
                frozen_at = time.monotonic()
                time.sleep(3)
                stop.set()
                waited = time.monotonic() + 60
                for worker in workers:  # every call in flight returns while still frozen
                    worker.join(max(0.0, waited - time.monotonic()))
                assert not any(worker.is_alive() for worker in workers), "a store call hung"
            finally:
                stop.set()
                server.thaw()
            assert {outcome for _, _, outcome in calls} <= {"ok", "503"}, calls
            after = [outcome for started, _, outcome in calls if started > frozen_at]
            assert after and set(after) == {"503"}, calls
            assert any(outcome == "ok" for started, _, outcome in calls if started < frozen_at)

            # The same store serves again: the session made before and new logins, from
            # several threads at once (no connection went back to the pool half-used), and
            # the lock.
            errors: List[BaseException] = []

            def rounds() -> None:
                try:
                    for _ in range(5):
                        _round(call, store, token)
                except BaseException as exc:  # handed to the test's thread
                    errors.append(exc)

            checkers = [threading.Thread(target=rounds) for _ in range(4)]
            for checker in checkers:
                checker.start()
            for checker in checkers:
                checker.join(60)
            assert not any(checker.is_alive() for checker in checkers), "a store call hung"
            assert not errors, errors
            owner = call(lambda: store.acquire_lock("wx-freeze", 30))
            assert owner is not None
            assert call(lambda: store.release_lock("wx-freeze", owner))
            if not store.asynchronous:
                assert store.engine.pool.checkedout() == 0
    finally:
        if not store.asynchronous:
            store.close()
        drop_tables(server.url(), prefix)
