"""A gunicorn Flask app and a uvicorn Starlette app sharing sessions through PostgreSQL.

Both load ``WX_SESSION_STORE=postgresql://…`` from the environment, as a deployment would
(the Flask app on psycopg, the Starlette app on asyncpg). They accept each other's tokens,
code retries and logouts; the tables hold no token and no code in clear. When a PostgreSQL
of the test's own is killed under traffic both answer 503 JSON within the timeout, and when
it returns both serve the sessions made before it died, and new logins, without a restart.
When a PostgreSQL or a MariaDB of the test's own is frozen (SIGSTOP: connections still
accepted, nothing answered) both answer 503 JSON, their workers alive, and after SIGCONT both
serve again without a restart (Flask on psycopg / PyMySQL, Starlette on asyncpg / aiomysql).

The shared server gets a database of this test's own, dropped afterwards; the kill and
freeze tests run their own servers (``initdb`` and ``postgres``, or ``mariadb-install-db``
and ``mariadbd``, on a free port, signalled by pid).
"""

from __future__ import annotations

import secrets
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("gunicorn")

from tests.e2e.test_redis_shared import (  # the same two apps and traffic as for Redis
    Traffic,
    flask_app,
    login,
    require_flask,
    starlette_app,
    starlette_missing,
    timed,
)
from tests.sql_support import (
    PG_URL,
    answering,
    private_mariadb,
    private_postgresql,
    sql_module,
)
from wxmiddleware.testing import FakeWeChat

from .flow import Client, assert_json_error
from .servers import app_env

pytestmark = [pytest.mark.e2e]


@contextmanager
def own_database() -> Iterator[str]:
    """The URL of a new database on the shared PostgreSQL, dropped afterwards."""
    answering(PG_URL)
    name = f"wxtest_{secrets.token_hex(4)}"
    admin = sql_module().SQLStore.from_url(PG_URL, create_schema=False)
    with admin.engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def wx_env(fake_wechat: FakeWeChat) -> Dict[str, str]:
    return app_env(fake_wechat)


def test_flask_and_starlette_share_sessions_through_postgresql(
    fake_wechat: FakeWeChat, wx_env: Dict[str, str], tmp_path: Path
) -> None:
    require_flask()
    missing = starlette_missing()
    if missing:
        pytest.skip(missing)
    workdir = tmp_path
    openid = fake_wechat.openid_for("alice")
    tokens: List[str] = []
    codes: List[str] = []
    with own_database() as url:
        env = {**wx_env, "WX_SESSION_STORE": url}
        with (
            flask_app(env, workdir / "flask") as wsgi,
            starlette_app(env, workdir / "asgi") as asgi,
        ):
            clients = (Client(wsgi.url), Client(asgi.url))
            for first, second in (clients, clients[::-1]):
                code = fake_wechat.issue_code("alice")
                codes.append(code)
                token = login(first, code)
                tokens.append(token)
                for client in (first, second):
                    answer = client.me(token)
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["openid"] == openid

                # A retry of the code through the other app: the same session, one call.
                calls = fake_wechat.jscode2session_calls
                assert login(second, code) == token
                assert fake_wechat.jscode2session_calls == calls

                # Logout on one app ends the session on the other.
                logout = second.call("POST", "/wx/logout", headers={"3rd-session": token})
                assert logout.status_code == 204
                assert_json_error(first.me(token), 401)
                assert_json_error(second.me(token), 401)
            kept = login(clients[0], fake_wechat.issue_code("alice"))
            assert clients[1].me(kept).status_code == 200

            store = sql_module().SQLStore.from_url(url, create_schema=False)
            with store.engine.connect() as conn:
                dump = "\n".join(
                    repr(tuple(row))
                    for table in ("wx_sessions", "wx_codes")
                    for row in conn.exec_driver_sql(f"SELECT * FROM {table}")
                )
            store.close()
            answers = clients[0].answers + clients[1].answers
            logs = wsgi.log() + asgi.log()
    assert dump
    for secret in [*tokens, kept, *codes]:
        assert secret not in dump
    assert "Traceback" not in logs
    assert all("session_key" not in answer for answer in answers)


def test_postgresql_killed_under_traffic_then_back(
    fake_wechat: FakeWeChat, wx_env: Dict[str, str], tmp_path: Path
) -> None:
    require_flask()
    missing = starlette_missing()
    workdir = tmp_path
    with private_postgresql() as database, ExitStack() as stack:
        env = {**wx_env, "WX_SESSION_STORE": database.url()}
        servers = [stack.enter_context(flask_app(env, workdir / "flask"))]
        if not missing:
            servers.append(stack.enter_context(starlette_app(env, workdir / "asgi")))
        clients = [Client(server.url) for server in servers]
        tokens = [login(client, fake_wechat.issue_code("alice")) for client in clients]
        for client in clients:  # each app reads the others' sessions
            assert all(client.me(token).status_code == 200 for token in tokens)

        targets = [(client.url, token) for client, token in zip(clients, tokens)]
        with Traffic(targets) as traffic:
            time.sleep(0.5)
            database.kill()
            time.sleep(0.2)  # the requests in flight when it died end meanwhile
            killed_at = len(traffic.answers)
            time.sleep(2)
        during = traffic.answers[killed_at:]
        assert {status for _, status, _, _ in traffic.answers} <= {200, 503}, traffic.answers
        for client in clients:
            mine = [answer for answer in during if answer[0] == client.url]
            assert mine and {(s, e) for _, s, e, _ in mine} == {(503, "store_unavailable")}

        slowest = 0.0
        for client, token in zip(clients, tokens):
            for response, seconds in (
                timed(client.me, token),
                timed(client.login, fake_wechat.issue_code()),
            ):
                assert_json_error(response, 503)
                assert response.json()["error"] == "store_unavailable"
                slowest = max(slowest, seconds)
        print(f"\nPostgreSQL killed: 503 JSON within {slowest * 1000:.0f} ms")
        assert slowest < 5

        database.start()  # the same port and data: the sessions survived
        for client in clients:
            assert all(client.me(token).status_code == 200 for token in tokens)
        fresh = [login(client, fake_wechat.issue_code("alice")) for client in clients]
        for client in clients:
            assert all(client.me(token).status_code == 200 for token in fresh)

        for server in servers:
            assert server.process.poll() is None
            assert "Traceback" not in server.log()
            assert "Worker exiting" not in server.log()
    if missing:
        pytest.skip(f"ran with the Flask app only: {missing}")


@pytest.mark.parametrize("database", ["postgresql", "mariadb"])
def test_a_database_frozen_under_traffic_gives_503_then_serves_again(
    database: str, fake_wechat: FakeWeChat, wx_env: Dict[str, str], tmp_path: Path
) -> None:
    require_flask()
    missing = starlette_missing()
    private = private_postgresql if database == "postgresql" else private_mariadb
    with private() as frozen, ExitStack() as stack:
        env = {**wx_env, "WX_SESSION_STORE": frozen.url()}
        servers = [stack.enter_context(flask_app(env, tmp_path / "flask"))]
        if not missing:
            servers.append(stack.enter_context(starlette_app(env, tmp_path / "asgi")))
        clients = [Client(server.url) for server in servers]
        tokens = [login(client, fake_wechat.issue_code("alice")) for client in clients]
        for client in clients:
            assert all(client.me(token).status_code == 200 for token in tokens)

        targets = [(client.url, token) for client, token in zip(clients, tokens)]
        try:
            with Traffic(targets) as traffic:
                time.sleep(0.5)
                frozen.freeze()
                # Requests that read their session before the freeze end meanwhile; each
                # one after waits for the store's deadline, then answers 503.
                time.sleep(1)
                frozen_at = len(traffic.answers)
                time.sleep(5)
            during = traffic.answers[frozen_at:]
            # A status 0 is a request that got no answer within 10 s.
            assert {status for _, status, _, _ in traffic.answers} <= {200, 503}, traffic.answers
            for client in clients:
                mine = [answer for answer in during if answer[0] == client.url]
                assert mine and {(s, e) for _, s, e, _ in mine} == {(503, "store_unavailable")}
            for client, token in zip(clients, tokens):
                for response in (client.me(token), client.login(fake_wechat.issue_code())):
                    assert_json_error(response, 503)
                    assert response.json()["error"] == "store_unavailable"
        finally:
            frozen.thaw()

        # The same workers serve again: the sessions made before, and new logins.
        for client in clients:
            assert all(client.me(token).status_code == 200 for token in tokens)
        fresh = [login(client, fake_wechat.issue_code("alice")) for client in clients]
        for client in clients:
            assert all(client.me(token).status_code == 200 for token in fresh)

        for server in servers:
            assert server.process.poll() is None
            log = server.log()
            assert "Traceback" not in log
            assert "WORKER TIMEOUT" not in log and "Worker exiting" not in log
    if missing:
        pytest.skip(f"ran with the Flask app only: {missing}")
