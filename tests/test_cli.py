"""The wxmiddleware command: demo, fake-wechat and sessions, run as real processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
import requests

import wxmiddleware
from tests.stores.support import SCOPE
from wxmiddleware import ConfigError, SQLiteStore, WxSession
from wxmiddleware._cli_sessions import resolve_admin_store
from wxmiddleware.session import new_token, short_hash, token_key
from wxmiddleware.stores import default_sqlite_path

from .e2e.servers import ROOT, free_port


def run_cli(
    *args: str, env: Dict[str, str], cwd: Optional[Path] = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wxmiddleware", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


@pytest.fixture
def cli_env(tmp_path: Path) -> Dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WX_")}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return env


def test_help_on_every_subcommand(cli_env: Dict[str, str]) -> None:
    for command in (
        [],
        ["demo"],
        ["fake-wechat"],
        ["sessions"],
        ["sessions", "list"],
        ["sessions", "revoke"],
        ["sessions", "revoke-all"],
        ["sessions", "purge"],
    ):
        result = run_cli(*command, "--help", env=cli_env)
        assert result.returncode == 0, result.stderr
        assert "usage: wxmiddleware" in result.stdout


def test_bad_arguments_exit_2(cli_env: Dict[str, str]) -> None:
    assert run_cli("sessions", "list", env=cli_env).returncode == 2
    assert run_cli("nonsense", env=cli_env).returncode == 2
    result = run_cli("sessions", "list", "--openid", "o", env=cli_env)
    assert result.returncode == 2 and "--store" in result.stderr
    result = run_cli("sessions", "list", "--openid", "o", "--store", "ftp://x", env=cli_env)
    assert result.returncode == 2 and "ftp" in result.stderr


def test_version(cli_env: Dict[str, str]) -> None:
    result = run_cli("--version", env=cli_env)
    assert result.returncode == 0
    assert result.stdout.strip() == f"wxmiddleware {wxmiddleware.__version__}"


def make_store(path: Path) -> None:
    """An existing, empty SQLite store (its sessions are test_sessions_on_sqlite's subject)."""
    store = SQLiteStore(path)
    store.purge_expired()  # the first operation creates the database
    store.close()


def test_a_missing_store_is_refused_naming_its_path_and_never_created(
    cli_env: Dict[str, str], tmp_path: Path
) -> None:
    typo = tmp_path / "app" / "typo.db"
    result = run_cli(
        "sessions", "revoke-all", "--store", f"sqlite:///{typo}", "--openid", "o", env=cli_env
    )
    assert result.returncode == 2
    assert f"no session store at {typo}" in result.stderr
    assert "ended" not in result.stdout
    assert not typo.exists() and not typo.parent.exists()


@pytest.mark.parametrize("content", [b"", b"not a database at all"])
def test_a_file_that_is_no_store_is_refused_and_left_as_it_was(
    cli_env: Dict[str, str], tmp_path: Path, content: bytes
) -> None:
    other = tmp_path / "other.sqlite3"
    other.write_bytes(content)
    result = run_cli("sessions", "purge", "--store", f"sqlite:///{other}", env=cli_env)
    assert result.returncode == 2
    assert f"{other} (from --store) is not a wxmiddleware session store" in result.stderr
    assert other.read_bytes() == content


def test_a_relative_sqlite_path_is_resolved_against_the_working_directory_and_shown(
    cli_env: Dict[str, str], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    missing = run_cli(
        "sessions", "list", "--store", "sqlite:///tmp/app/s.db", "--openid", "o-alice",
        env=cli_env, cwd=elsewhere,
    )  # fmt: skip
    assert missing.returncode == 2
    assert f"no session store at {elsewhere / 'tmp/app/s.db'}" in missing.stderr
    assert not (elsewhere / "tmp").exists()

    make_store(elsewhere / "s.db")
    found = run_cli(
        "sessions", "list", "--store", "sqlite:///s.db", "--openid", "o-alice", "--json",
        env=cli_env, cwd=elsewhere,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert f"store: sqlite:///{elsewhere / 's.db'} (from --store)" in found.stderr
    assert json.loads(found.stdout) == []  # the store line stays off stdout


def test_without_store_it_uses_the_apps_wx_session_store_and_says_so(
    cli_env: Dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "app.db"
    make_store(path)
    env = dict(cli_env, WX_SESSION_STORE=f"sqlite:///{path}")
    result = run_cli("sessions", "revoke-all", "--openid", "o-bob", env=env)
    assert result.returncode == 0, result.stderr
    assert f"store: sqlite:///{path} (from WX_SESSION_STORE" in result.stderr
    assert "ended 0 sessions of o-bob" in result.stdout


def test_the_apps_default_store_is_named_and_never_created(
    cli_env: Dict[str, str], tmp_path: Path
) -> None:
    appid = "wx0123456789abcdef"
    env = dict(cli_env, WX_APPID=appid)
    default = tmp_path / "state" / "wxmiddleware" / f"sessions-{appid}.sqlite3"
    missing = run_cli("sessions", "purge", env=env)
    assert missing.returncode == 2
    assert f"no session store at {default}" in missing.stderr
    assert "the app's default for appid" in missing.stderr
    assert not (tmp_path / "state").exists()

    default.parent.mkdir(parents=True)
    make_store(default)
    listed = run_cli("sessions", "list", "--openid", "o-alice", env=env)
    assert listed.returncode == 0, listed.stderr
    assert f"store: sqlite:///{default} (from the app's default" in listed.stderr


def test_resolve_admin_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="inside the app's process"):
        resolve_admin_store("memory://", None, {})
    with pytest.raises(ConfigError, match="--store"):
        resolve_admin_store(None, None, {"WX_SESSION_STORE": " "})
    redis = resolve_admin_store(None, None, {"WX_SESSION_STORE": "redis://:pw@cache:6379/2"})
    assert redis.url == "redis://:pw@cache:6379/2"
    assert redis.shown == "redis://:***@cache:6379/2" and "pw" not in redis.shown
    assert "WX_SESSION_STORE" in redis.source
    # --store wins over the environment.
    given_store = SQLiteStore(tmp_path / "given.db")
    given_store.purge_expired()  # opens it: an empty store of ours
    given_store.close()
    given = resolve_admin_store(
        f"sqlite:///{tmp_path / 'given.db'}", "wxapp", {"WX_SESSION_STORE": "memory://"}
    )
    assert given.source == "--store"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match=str(default_sqlite_path("wxapp"))):
        resolve_admin_store(None, "wxapp", {})


@pytest.fixture
def populated(tmp_path: Path) -> Iterator[Dict[str, object]]:
    path = tmp_path / "admin.sqlite3"
    store = SQLiteStore(path)
    now = time.time()
    tokens: List[str] = []
    for openid in ("o-alice", "o-alice", "o-bob"):
        token = new_token()
        store.save(token, WxSession(openid, "sk-secret-value", None, now, now + 3600), 600, SCOPE)
        tokens.append(token)
    store.save(new_token(), WxSession("o-old", "sk-old", None, now - 7200, now - 1), 600, SCOPE)
    yield {"url": f"sqlite:///{path}", "store": store, "tokens": tokens}
    store.close()


def test_sessions_on_sqlite(populated: Dict[str, object], cli_env: Dict[str, str]) -> None:
    url = str(populated["url"])
    tokens = populated["tokens"]
    assert isinstance(tokens, list)
    listed = run_cli(
        "sessions", "list", "--store", url, "--openid", "o-alice", "--json", env=cli_env
    )
    assert listed.returncode == 0, listed.stderr
    sessions = json.loads(listed.stdout)
    assert {entry["key_hash"] for entry in sessions} == {
        short_hash(token_key(token)) for token in tokens[:2]
    }
    text = run_cli("sessions", "list", "--store", url, "--openid", "o-alice", env=cli_env)
    for output in (listed.stdout, text.stdout):
        assert "sk-secret-value" not in output
        assert all(token not in output for token in tokens)

    victim = sessions[0]["key_hash"]
    revoked = run_cli(
        "sessions",
        "revoke",
        "--store",
        url,
        "--openid",
        "o-alice",
        "--session",
        victim,
        env=cli_env,
    )
    assert revoked.returncode == 0, revoked.stderr
    again = run_cli(
        "sessions",
        "revoke",
        "--store",
        url,
        "--openid",
        "o-alice",
        "--session",
        victim,
        env=cli_env,
    )
    assert again.returncode == 1
    left = json.loads(
        run_cli(
            "sessions", "list", "--store", url, "--openid", "o-alice", "--json", env=cli_env
        ).stdout
    )
    assert len(left) == 1

    ended = run_cli("sessions", "revoke-all", "--store", url, "--openid", "o-bob", env=cli_env)
    assert ended.returncode == 0 and "ended 1" in ended.stdout
    purged = run_cli("sessions", "purge", "--store", url, env=cli_env)
    assert purged.returncode == 0 and "purged 1 expired" in purged.stderr


def test_sessions_on_redis(cli_env: Dict[str, str]) -> None:
    from wxmiddleware.stores import open_store

    from .redis_support import SHARED_URL, shared_client

    shared_client().close()
    url = SHARED_URL
    store = open_store(url, "wxcli")
    now = time.time()
    token = new_token()
    openid = f"o-cli-{new_token()[:8]}"
    store.save(token, WxSession(openid, "sk-redis-secret", None, now, now + 3600), 600, SCOPE)
    try:
        listed = run_cli(
            "sessions", "list", "--store", url, "--openid", openid, "--json", env=cli_env
        )
        assert listed.returncode == 0, listed.stderr
        (entry,) = json.loads(listed.stdout)
        assert entry["key_hash"] == short_hash(token_key(token))
        assert "sk-redis-secret" not in listed.stdout and token not in listed.stdout
        revoked = run_cli(
            "sessions",
            "revoke",
            "--store",
            url,
            "--openid",
            openid,
            "--session",
            entry["key_hash"],
            env=cli_env,
        )
        assert revoked.returncode == 0, revoked.stderr
        assert store.get(token, 600, SCOPE) is None
    finally:
        store.revoke_all(openid, SCOPE)
        store.close()


def test_unreachable_store_exits_3(cli_env: Dict[str, str]) -> None:
    pytest.importorskip("redis")
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_cli("sessions", "list", "--store", url, "--openid", "o", env=cli_env)
    assert result.returncode == 3, result.stderr
    assert "unavailable" in result.stderr


def test_demo_serves_a_working_login(cli_env: Dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("flask")
    port = free_port()
    env = dict(cli_env, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "wxmiddleware", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        printed = ""
        while "Press Ctrl-C" not in printed:
            line = process.stdout.readline()
            assert line, f"the demo exited: {printed}"
            printed += line
        code = re.search(r'"code": "([^"]+)"', printed)
        assert code, printed
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(url + "/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        login = requests.post(url + "/wx/login", json={"code": code.group(1)}, timeout=10)
        assert login.status_code == 200, login.text
        token = login.json()["3rd_session"]
        me = requests.get(url + "/api/me", headers={"3rd-session": token}, timeout=10)
        assert me.status_code == 200 and me.json()["openid"].startswith("o")
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_fake_wechat_command(cli_env: Dict[str, str]) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "wxmiddleware", "fake-wechat", "--port", str(port)),
            *("--app", "wxsecond0000000001=second-secret-0123456789"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env,
    )
    try:
        assert process.stdout is not None
        assert "listening" in process.stdout.readline()
        code = requests.get(f"http://127.0.0.1:{port}/fake/code", timeout=5).json()["code"]
        assert len(code) == 32
        params = {"appid": "wxsecond0000000001"}
        answer = requests.get(f"http://127.0.0.1:{port}/fake/code", params=params, timeout=5)
        assert answer.status_code == 200 and len(answer.json()["code"]) == 32
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_sessions_appid_works_on_one_apps_sessions(tmp_path: Path, cli_env: Dict[str, str]) -> None:
    """Several apps in one store (issue 22): ``--appid`` lists and ends only that app's."""
    from wxmiddleware._sealing import Sealer
    from wxmiddleware.session import SessionScope

    path = tmp_path / "shared.sqlite3"
    store = SQLiteStore(path)
    now = time.time()
    apps = ("wx00000000000000a1", "wx00000000000000b2", "wx00000000000000c3")
    for appid in apps:
        scope = SessionScope(appid, Sealer(["cli-test-store-key-0123"]))
        session = WxSession("o-shared", "sk", None, now, now + 3600, appid=appid)
        store.save(new_token(), session, 3600, scope)
    store.close()
    url = f"sqlite:///{path}"
    listed = run_cli(
        "sessions", "list", "--store", url, "--openid", "o-shared", "--json",
        "--appid", "wx00000000000000b2", env=cli_env,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert [info["appid"] for info in json.loads(listed.stdout)] == ["wx00000000000000b2"]
    ended = run_cli(
        "sessions", "revoke-all", "--store", url, "--openid", "o-shared",
        "--appid", "wx00000000000000b2", env=cli_env,
    )  # fmt: skip
    assert ended.returncode == 0 and "ended 1 sessions" in ended.stdout, ended.stderr
    left = run_cli("sessions", "list", "--store", url, "--openid", "o-shared", env=cli_env)
    assert "wx00000000000000a1" in left.stdout and "wx00000000000000b2" not in left.stdout
    # Without --appid, the user's sessions in every app end.
    everywhere = run_cli(
        "sessions", "revoke-all", "--store", url, "--openid", "o-shared", env=cli_env
    )  # fmt: skip
    assert everywhere.returncode == 0 and "ended 2 sessions" in everywhere.stdout
    none_left = run_cli(
        "sessions", "list", "--store", url, "--openid", "o-shared", "--json", env=cli_env
    )  # fmt: skip
    assert json.loads(none_left.stdout) == []
