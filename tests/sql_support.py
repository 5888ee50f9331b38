"""PostgreSQL and MariaDB/MySQL for the tests: the shared servers, and a private PostgreSQL
and MariaDB that a test starts, freezes (SIGSTOP) or kills.

The shared servers are ``WX_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``) and ``WX_TEST_MYSQL_URL`` (default
``mysql://root@127.0.0.1:3306/test``). Tests there never drop anything but their own: each
store gets a table prefix of its own, and its tables are dropped when the test ends, because
other test runs may use the same database at once.

Without a server (or SQLAlchemy and the drivers) a test skips, saying why; with ``CI`` set
it fails instead, since CI must run them all (``.ci/run`` starts both servers).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, NoReturn, Optional

import pytest

from tests.e2e.servers import free_port

PG_URL = os.environ.get("WX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("WX_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
URLS = {"postgresql": PG_URL, "mysql": MYSQL_URL}
#: Where the private PostgreSQL's programs are (Debian's layout), unless on PATH.
PG_BIN = Path(os.environ.get("WX_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
#: Where else the private MariaDB's server program may be (Debian's layout).
SBIN = "/usr/sbin:/usr/local/sbin"


def unavailable(reason: str) -> NoReturn:
    """Skip a test that needs a database, or fail it under CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def sql_module() -> Any:
    """:mod:`wxmiddleware.stores.sql`, or skip (fail under CI) without SQLAlchemy."""
    try:
        from wxmiddleware.stores import sql
    except ImportError as exc:
        unavailable(f"SQLAlchemy is not installed ({exc}): pip install 'wxmiddleware[sql]'")
    return sql


def unique_prefix() -> str:
    """A table prefix no other test or concurrent run uses."""
    return f"wxt{secrets.token_hex(4)}_"


def answering(url: str) -> None:
    """Skip (fail under CI) unless the database at ``url`` answers."""
    sql = sql_module()
    store = sql.SQLStore.from_url(url, create_schema=False)
    try:
        with store.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:
        where = url.rsplit("@", 1)[-1]
        unavailable(
            f"no database answers at {where} ({type(exc).__name__}); start it (.ci/run does)"
            " or point WX_TEST_POSTGRES_URL / WX_TEST_MYSQL_URL at one tests may use"
        )
    finally:
        store.close()


def drop_tables(url: str, prefix: str) -> None:
    """Drop the four tables of ``prefix`` (only those: others may be using the database)."""
    import sqlalchemy as sa

    sql = sql_module()
    store = sql.SQLStore.from_url(url, table_prefix=prefix, create_schema=False)
    try:
        with store.engine.connect() as conn:
            for name in ("sessions", "codes", "values", "locks"):
                table = sa.Table(f"{prefix}{name}", sa.MetaData())
                conn.execute(sa.schema.DropTable(table, if_exists=True))
    finally:
        store.close()


@contextmanager
def sql_store(kind: str, prefix: Optional[str] = None, **options: Any) -> Iterator[Any]:
    """A fresh store of ``kind`` (``postgresql``, ``mysql``, ``async-postgresql``,
    ``async-mysql``) under a unique prefix; async stores are driven through
    :class:`tests.stores.support.Blocking`. Its tables are dropped afterwards."""
    from tests.stores.support import Blocking

    sql = sql_module()
    url = URLS[kind.rsplit("-", 1)[-1]]
    answering(url)
    prefix = prefix or unique_prefix()
    if kind.startswith("async"):
        store: Any = Blocking(sql.AsyncSQLStore.from_url(url, table_prefix=prefix, **options))
    else:
        store = sql.SQLStore.from_url(url, table_prefix=prefix, **options)
    try:
        yield store
    finally:
        store.close()
        drop_tables(url, prefix)


def _pg_binary(name: str) -> str:
    found = shutil.which(name) or (str(PG_BIN / name) if (PG_BIN / name).exists() else None)
    if found is None:
        unavailable(f"{name} is not on PATH nor in {PG_BIN}, so no private PostgreSQL can start")
    return found


def _children(pid: int) -> List[int]:
    """The processes whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


class PrivatePostgreSQL:
    """A PostgreSQL cluster of our own in a temporary directory, on a free loopback port
    (trust auth).

    ``initdb`` runs once; :meth:`start` starts ``postgres`` (again, on the same port, after
    a :meth:`kill`), :meth:`kill` ends it with SIGKILL (a crash), every process by its pid.
    As root, the programs run as the ``postgres`` user (``initdb`` refuses root).
    """

    def __init__(self) -> None:
        self.port = free_port()
        # Under /tmp, not pytest's tmp_path: as root, the postgres user must reach it.
        self.workdir = Path(tempfile.mkdtemp(prefix=f"wxtest-pg-{self.port}-"))
        self.data = self.workdir / "data"
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._as_user: List[str] = []
        self._frozen: List[int] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                unavailable("running as root without runuser: initdb refuses to run as root")
            self._as_user = [runuser, "-u", "postgres", "--"]
            shutil.chown(self.workdir, "postgres")

    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as_user, *command], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run(
            _pg_binary("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N"
        )

    def start(self) -> None:
        command = [
            *self._as_user,
            _pg_binary("postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.workdir),
            "-c",
            "fsync=off",
        ]
        with open(self.workdir / "server.log", "ab") as log:
            # A session of its own: kill() ends the postmaster and its backends together.
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        """Until a query answers (the port opens before recovery ends)."""
        import sqlalchemy as sa

        engine = sa.create_engine(
            self.url().replace("postgresql:", "postgresql+psycopg:"), poolclass=sa.pool.NullPool
        )
        deadline = time.monotonic() + 30
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"postgres exited early:\n{self.log()}")
                try:
                    with engine.connect() as conn:
                        conn.exec_driver_sql("SELECT 1")
                    return
                except sa.exc.OperationalError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"postgres did not start:\n{self.log()}") from None
                    time.sleep(0.1)
        finally:
            engine.dispose()

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends (its process group, by id): a crash."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def freeze(self) -> None:
        """SIGSTOP the postmaster, then each of its children (every backend is in a session
        of its own, so not in the postmaster's process group), by pid: the kernel still
        accepts connections and acknowledges queries, and nothing answers."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGSTOP)  # first: it forks no backend while stopped
        self._frozen = [postmaster]
        for child in _children(postmaster):
            os.kill(child, signal.SIGSTOP)
            self._frozen.append(child)

    def thaw(self) -> None:
        """SIGCONT what :meth:`freeze` stopped, and ``runuser`` (as root), which stops itself
        when its child stops, as ``su`` does for job control."""
        for pid in reversed(self._frozen):
            os.kill(pid, signal.SIGCONT)
        if self._frozen and self._as_user and self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)
        self._frozen = []

    def stop(self) -> None:
        """A fast shutdown (SIGINT to the postmaster, by the pid it wrote)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.thaw()
        pid_file = self.data / "postmaster.pid"
        try:
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
            self.process.wait(timeout=20)
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def private_postgresql() -> Iterator[PrivatePostgreSQL]:
    """A started :class:`PrivatePostgreSQL`, stopped when the block ends."""
    server = PrivatePostgreSQL()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


def _mariadb_binary(*names: str) -> str:
    path = os.environ.get("PATH", "") + os.pathsep + SBIN
    for name in names:
        found = shutil.which(name, path=path)
        if found is not None:
            return found
    unavailable(f"none of {', '.join(names)} is installed, so no private MariaDB can start")


class PrivateMariaDB:
    """A MariaDB server of our own: a data directory made by ``mariadb-install-db`` in a
    temporary directory, ``mariadbd`` on a free loopback port, root without a password and
    a database ``test``.

    :meth:`freeze` stops it with SIGSTOP (one process: its threads stop with it) and
    :meth:`thaw` continues it, by pid. As root, both programs run with ``--user=root``.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"wxtest-mariadb-{self.port}-"))
        self.data = self.workdir / "data"
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._as_root = ["--user=root"] if os.geteuid() == 0 else []

    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/test"

    def init(self) -> None:
        command = [
            _mariadb_binary("mariadb-install-db", "mysql_install_db"),
            "--no-defaults",
            f"--datadir={self.data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *self._as_root,
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        command = [
            _mariadb_binary("mariadbd", "mysqld"),
            "--no-defaults",
            f"--datadir={self.data}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.workdir / 'mysqld.sock'}",
            f"--pid-file={self.workdir / 'mysqld.pid'}",
            *self._as_root,
        ]
        with open(self.workdir / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        """Until it answers, then create the database ``test``."""
        import sqlalchemy as sa

        engine = sa.create_engine(
            f"mysql+pymysql://root@127.0.0.1:{self.port}/", poolclass=sa.pool.NullPool
        )
        deadline = time.monotonic() + 60
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"mariadbd exited early:\n{self.log()}")
                try:
                    with engine.connect() as conn:
                        conn.exec_driver_sql("CREATE DATABASE IF NOT EXISTS test")
                    return
                except sa.exc.OperationalError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"mariadbd did not start:\n{self.log()}") from None
                    time.sleep(0.1)
        finally:
            engine.dispose()

    def freeze(self) -> None:
        """SIGSTOP the server: the kernel still accepts connections and acknowledges
        queries, and nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT the server."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM (a normal shutdown), SIGKILL if it takes longer than 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.thaw()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def private_mariadb() -> Iterator[PrivateMariaDB]:
    """A started :class:`PrivateMariaDB`, stopped when the block ends."""
    server = PrivateMariaDB()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
