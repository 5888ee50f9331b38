"""Redis for the tests: the shared server, and private servers the tests start and kill.

The shared server is ``WX_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/13``, a database
number of its own). Tests there never flush anything: each uses a key prefix of its own and
deletes only its keys, because tox runs several environments against that server at once.
Tests that kill, restart or count commands start a private ``redis-server`` on a free port.

Without a server (or ``redis-server``) a test skips, saying why; with ``CI`` set it fails
instead, since CI must run them all (``.ci/run`` starts Redis).
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, NoReturn, Optional

import pytest

from tests.e2e.servers import free_port

redis = pytest.importorskip("redis")

SHARED_URL = os.environ.get("WX_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def unavailable(reason: str) -> NoReturn:
    """Skip a test that needs something Redis-related, or fail it under CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def shared_client() -> Any:
    """A client for the shared test database, after checking that it answers."""
    client = redis.Redis.from_url(SHARED_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        where = SHARED_URL.rsplit("@", 1)[-1]
        unavailable(
            f"no Redis answers at {where} ({type(exc).__name__}); start redis-server"
            " or point WX_TEST_REDIS_URL at a server whose database may be used by tests"
        )
    return client


def unique_prefix() -> str:
    """A key prefix no other test or concurrent run uses."""
    return f"wxtest-{secrets.token_hex(6)}:"


def delete_prefixed(client: Any, prefix: str) -> None:
    """Delete this test's keys (never the whole database: others may be using it)."""
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    for key in keys:
        client.delete(key)


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not on PATH, so no private Redis can be started")
    return binary


class RedisServer:
    """A ``redis-server`` of our own on a free loopback port, without persistence.

    ``kill()`` ends it with SIGKILL (a crash, not a shutdown); ``start()`` starts it again on
    the same port. Every process is ended by its pid.
    """

    def __init__(
        self,
        workdir: Path,
        *extra: str,
        config_file: Optional[Path] = None,
        port: Optional[int] = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.workdir = workdir / f"redis-{self.port}"
        self.workdir.mkdir(parents=True)
        self.extra = extra
        self.config_file = config_file
        self.client_options: Dict[str, Any] = {}  # e.g. TLS settings, for client()
        self.process: Optional[subprocess.Popen[bytes]] = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, **options: Any) -> Any:
        options = {"socket_timeout": 5, **self.client_options, **options}
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def start(self) -> None:
        # redis-server reads a configuration file only as its first argument.
        config = [str(self.config_file)] if self.config_file is not None else []
        command = [
            redis_server_binary(),
            *config,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.workdir),
            *self.extra,
        ]
        with open(self.workdir / "server.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self) -> None:
        client = self.client(socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited early:\n{self.log()}")
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start:\n{self.log()}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return (self.workdir / "server.log").read_text(errors="replace")


@contextmanager
def private_redis(
    workdir: Path, *extra: str, config_file: Optional[Path] = None
) -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, stopped when the block ends."""
    server = RedisServer(workdir, *extra, config_file=config_file)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def private_sentinel(workdir: Path, master: RedisServer, name: str) -> Iterator[RedisServer]:
    """A Sentinel (``redis-server --sentinel``) watching ``master`` under ``name``."""
    config = workdir / f"sentinel-{master.port}.conf"  # Sentinel rewrites it: a file of its own
    config.write_text(f"sentinel monitor {name} 127.0.0.1 {master.port} 1\n")
    with private_redis(workdir, "--sentinel", config_file=config) as sentinel:
        yield sentinel


@contextmanager
def redis_cluster(workdir: Path, masters: int = 3) -> Iterator[List[RedisServer]]:
    """A Redis Cluster of ``masters`` masters and no replicas, torn down when the block ends."""
    servers: List[RedisServer] = []
    try:
        for _ in range(masters):
            server = RedisServer(workdir, port=free_cluster_port())
            server.extra = (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(server.workdir / f"nodes-{server.port}.conf"),
            )
            server.start()
            servers.append(server)
        cli = shutil.which("redis-cli")
        if cli is None:
            unavailable("redis-cli is not on PATH, so no Redis Cluster can be created")
        nodes = [f"127.0.0.1:{server.port}" for server in servers]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for server in servers:
            wait_cluster_ok(server)
        yield servers
    finally:
        for server in servers:
            server.stop()


def free_cluster_port() -> int:
    """A free port whose cluster bus port (10000 higher) is free too, so at most 55535."""
    for _ in range(100):
        port = random.randint(20000, 55535)
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def wait_cluster_ok(server: RedisServer) -> None:
    client = server.client()
    deadline = time.monotonic() + 30
    try:
        while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not become ready:\n{server.log()}")
            time.sleep(0.1)
    finally:
        client.close()
