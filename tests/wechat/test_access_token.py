"""The shared access token against the fake WeChat over real sockets, sync and async.

Several processes on one store (an SQLite file, a Redis database) make exactly one token
request between them, whether the store is empty, WeChat expired the token early, or the
stored token ran out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import time
from functools import partial
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from wxmiddleware import WxConfig, WxSession
from wxmiddleware.errors import (
    InvalidCode,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    WxError,
)
from wxmiddleware.stores import MemoryStore, SessionStore, SQLiteStore
from wxmiddleware.stores.aio import AsyncMemoryStore, AsyncSQLiteStore
from wxmiddleware.testing import (
    CHECK_SESSION_PATH,
    PHONE_NUMBER_PATH,
    STABLE_TOKEN_PATH,
    TOKEN_PATH,
    FakeWeChat,
)
from wxmiddleware.wechat import AccessTokenManager, AccessTokenRejected, WeChatClient, WxApi
from wxmiddleware.wechat._access_token import AccessToken, TokenPolicy, TokenReply
from wxmiddleware.wechat.aio_api import AsyncAccessTokenManager, AsyncWxApi

PROCESSES = 6


def config_for(fake: FakeWeChat, **options: Any) -> WxConfig:
    return WxConfig(appid=fake.appid, secret=fake.secret, api_base=fake.url, **options)


def log_in(fake: FakeWeChat, user: str = "alice") -> WxSession:
    """A session as the middleware would store it, from a real jscode2session call."""
    client = WeChatClient(config_for(fake))
    reply = client.code_to_session(fake.issue_code(user))
    client.close()
    now = time.time()
    return WxSession(reply.openid, reply.session_key, reply.unionid, now, now + 86400)


def store_token(store: SessionStore, fake: FakeWeChat, value: str) -> None:
    """Put a token in the store as a manager would have (one WeChat does not know)."""
    record = AccessToken.issued(TokenReply(value, 7200), time.time(), 300.0)
    store.set_value(TokenPolicy(config_for(fake)).name, record.to_record(), 7200)


# --- one process ---


def test_fetched_once_and_shared_through_the_store(fake_wechat: FakeWeChat) -> None:
    store = MemoryStore()
    first = AccessTokenManager(config_for(fake_wechat), store)
    second = AccessTokenManager(config_for(fake_wechat), store)  # another worker, same store
    token = first.get()
    assert second.get() == token and first.get() == token
    assert fake_wechat.token_calls == 1
    [call] = fake_wechat.calls
    assert (call.method, call.path, call.query) == ("POST", STABLE_TOKEN_PATH, [])
    assert json.loads(call.body) == {
        "grant_type": "client_credential",
        "appid": fake_wechat.appid,
        "secret": fake_wechat.secret,
        "force_refresh": False,
    }
    first.close()
    second.close()


def test_plain_token_endpoint_option(fake_wechat: FakeWeChat) -> None:
    api = WxApi(config_for(fake_wechat), MemoryStore(), stable_token=False)
    session = log_in(fake_wechat)
    assert api.check_session(session) is True
    assert api.check_session(session) is True
    assert fake_wechat.calls_to(TOKEN_PATH) == 1
    assert fake_wechat.calls_to(STABLE_TOKEN_PATH) == 0
    [call] = [call for call in fake_wechat.calls if call.path == TOKEN_PATH]
    assert call.method == "GET"
    assert dict(call.query) == {
        "grant_type": "client_credential",
        "appid": fake_wechat.appid,
        "secret": fake_wechat.secret,
    }
    api.close()


def test_refreshed_ahead_of_expiry(fake_wechat: FakeWeChat) -> None:
    fake_wechat.ACCESS_TOKEN_TTL = 2  # refreshed half-way through so short a lifetime
    manager = AccessTokenManager(config_for(fake_wechat), MemoryStore())
    first = manager.get()
    assert manager.get() == first and fake_wechat.token_calls == 1
    time.sleep(1.1)
    second = manager.get()
    assert second != first and fake_wechat.token_calls == 2
    manager.close()


@pytest.mark.parametrize("errcode", [40001, 42001])
def test_refused_token_is_dropped_and_the_call_retried_once(
    fake_wechat: FakeWeChat, errcode: int
) -> None:
    store = MemoryStore()
    api = WxApi(config_for(fake_wechat), store)
    session = log_in(fake_wechat)
    if errcode == 40001:
        store_token(store, fake_wechat, "a-token-wechat-never-issued")
    else:
        api.access_token()
        fake_wechat.expire_access_tokens()
    calls = fake_wechat.token_calls
    assert api.check_session(session) is True
    assert fake_wechat.token_calls == calls + 1
    assert fake_wechat.calls_to(CHECK_SESSION_PATH) == 2
    assert api.check_session(session) is True  # the fresh token was shared
    assert fake_wechat.token_calls == calls + 1
    api.close()


def test_a_refused_stable_token_that_wechat_still_hands_out_is_forced(
    fake_wechat: FakeWeChat,
) -> None:
    api = WxApi(config_for(fake_wechat), MemoryStore())
    session = log_in(fake_wechat)
    token = api.access_token()
    fake_wechat.inject("errcode", errcode=40001, path=CHECK_SESSION_PATH)
    assert api.check_session(session) is True
    bodies = [json.loads(call.body) for call in fake_wechat.calls if call.path == STABLE_TOKEN_PATH]
    # stable_token handed out the refused token again, so the manager forced a new one.
    assert [body["force_refresh"] for body in bodies] == [False, False, True]
    assert api.access_token() != token
    api.close()


@pytest.mark.parametrize("stable", [True, False])
def test_a_fresh_token_refused_too_is_an_error(fake_wechat: FakeWeChat, stable: bool) -> None:
    api = WxApi(config_for(fake_wechat), MemoryStore(), stable_token=stable)
    fake_wechat.inject("errcode", count=2, errcode=40001, path=CHECK_SESSION_PATH)
    with pytest.raises(AccessTokenRejected) as info:
        api.check_session(log_in(fake_wechat))
    assert (info.value.status, info.value.errcode) == (502, 40001)
    assert fake_wechat.token_calls == (3 if stable else 2)  # stable: a forced refresh too
    assert fake_wechat.calls_to(CHECK_SESSION_PATH) == 2
    api.close()


@pytest.mark.parametrize("stable", [True, False])
def test_invalidate(fake_wechat: FakeWeChat, stable: bool) -> None:
    manager = AccessTokenManager(config_for(fake_wechat), MemoryStore(), stable=stable)
    token = manager.get()
    manager.invalidate("some-older-token")
    assert manager.get() == token and fake_wechat.token_calls == 1
    manager.invalidate(token)
    # Fetched again: stable_token hands out the same token while it is valid, /cgi-bin/token
    # a new one.
    assert (manager.get() == token) is stable
    assert fake_wechat.token_calls == 2
    manager.close()


def test_threads_share_one_fetch(fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    import threading

    fake_wechat.latency = 0.2  # a slow WeChat: the others find the lock taken
    store = SQLiteStore(tmp_path / "s.sqlite3")
    barrier = threading.Barrier(8)
    tokens: List[str] = []

    def get() -> None:
        manager = AccessTokenManager(config_for(fake_wechat), store)
        barrier.wait()
        tokens.append(manager.get())
        manager.close()

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(tokens) == 8 and len(set(tokens)) == 1
    assert fake_wechat.token_calls == 1
    store.close()


def test_misconfigured_secret(fake_wechat: FakeWeChat) -> None:
    config = WxConfig(appid=fake_wechat.appid, secret="wrong-secret", api_base=fake_wechat.url)
    manager = AccessTokenManager(config, MemoryStore())
    with pytest.raises(UpstreamError) as info:
        manager.get()
    assert (info.value.status, info.value.errcode) == (502, 40125)
    assert "WX_SECRET" in (info.value.detail or "")
    manager.close()


# --- asyncio ---


def test_async_tasks_share_one_fetch(fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    fake_wechat.latency = 0.2

    async def main(store: Any) -> List[str]:
        managers = [AsyncAccessTokenManager(config_for(fake_wechat), store) for _ in range(10)]
        try:
            return list(await asyncio.gather(*(manager.get() for manager in managers)))
        finally:
            for manager in managers:
                await manager.aclose()
            await store.aclose()

    for store in (AsyncMemoryStore(), AsyncSQLiteStore(tmp_path / "s.sqlite3")):
        calls = fake_wechat.token_calls
        tokens = asyncio.run(main(store))
        assert len(set(tokens)) == 1
        assert fake_wechat.token_calls == calls + 1


def test_async_refused_token_is_retried_once(fake_wechat: FakeWeChat) -> None:
    session = log_in(fake_wechat)

    async def main() -> Tuple[bool, bool]:
        api = AsyncWxApi(config_for(fake_wechat), AsyncMemoryStore())
        try:
            await api.access_token()
            fake_wechat.expire_access_tokens()
            return await api.check_session(session), await api.check_session(session)
        finally:
            await api.aclose()

    assert asyncio.run(main()) == (True, True)
    assert fake_wechat.token_calls == 2
    assert fake_wechat.calls_to(CHECK_SESSION_PATH) == 3


# --- several processes on one store ---


def _open_store(spec: Tuple[str, str, str]) -> SessionStore:
    kind, location, prefix = spec
    if kind == "sqlite":
        return SQLiteStore(location)
    from wxmiddleware.stores.redis import RedisStore

    return RedisStore.from_url(location, key_prefix=prefix)


def _worker(
    spec: Tuple[str, str, str],
    config: Dict[str, Any],
    session: Dict[str, Any],
    barrier: Any,
    queue: Any,
) -> None:
    store = _open_store(spec)
    api = WxApi(WxConfig(**config), store)
    user = WxSession(**session)
    barrier.wait()  # round 1: nothing stored yet
    queue.put(api.access_token())
    barrier.wait()
    barrier.wait()  # round 2: WeChat expired the token early, every call answers 42001
    queue.put(api.check_session(user))
    barrier.wait()
    barrier.wait()  # round 3: the stored token ran out
    queue.put(api.access_token())
    api.close()
    store.close()


def share_across_processes(fake: FakeWeChat, spec: Tuple[str, str, str]) -> None:
    fake.latency = 0.1  # the others find the lock taken, not the work done
    session = log_in(fake)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES + 1, timeout=60)
    queue = ctx.Queue()
    config = {"appid": fake.appid, "secret": fake.secret, "api_base": fake.url}
    fields = {name: getattr(session, name) for name in session.__dataclass_fields__}
    processes = [
        ctx.Process(target=_worker, args=(spec, config, fields, barrier, queue))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()

    def round_results() -> List[Any]:
        barrier.wait()  # go
        barrier.wait()  # every process has answered
        return [queue.get(timeout=30) for _ in processes]

    try:
        tokens = round_results()
        assert len(set(tokens)) == 1
        assert fake.token_calls == 1

        fake.ACCESS_TOKEN_TTL = 2  # the next token runs out soon
        fake.expire_access_tokens()
        assert round_results() == [True] * PROCESSES
        assert fake.token_calls == 2
        assert fake.calls_to(CHECK_SESSION_PATH) == 2 * PROCESSES

        time.sleep(2.1)
        barrier.wait()
        for process in processes:
            process.join(60)
            assert process.exitcode == 0
        tokens = [queue.get(timeout=30) for _ in processes]
        assert len(set(tokens)) == 1
        assert fake.token_calls == 3
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()


def test_processes_on_one_sqlite_file_make_one_token_request(
    fake_wechat: FakeWeChat, tmp_path: Path
) -> None:
    share_across_processes(fake_wechat, ("sqlite", str(tmp_path / "s.sqlite3"), ""))


@pytest.fixture
def redis_prefix() -> Iterator[Tuple[str, str]]:
    from tests.redis_support import SHARED_URL, delete_prefixed, shared_client, unique_prefix

    client = shared_client()
    prefix = unique_prefix()
    yield SHARED_URL, prefix
    delete_prefixed(client, prefix)
    client.close()


@pytest.mark.redis
def test_processes_on_one_redis_make_one_token_request(
    fake_wechat: FakeWeChat, redis_prefix: Tuple[str, str]
) -> None:
    url, prefix = redis_prefix
    share_across_processes(fake_wechat, ("redis", url, prefix))


@pytest.mark.redis
def test_async_redis_store_shares_the_token(
    fake_wechat: FakeWeChat, redis_prefix: Tuple[str, str]
) -> None:
    from wxmiddleware.stores.redis import AsyncRedisStore, RedisStore

    url, prefix = redis_prefix
    fake_wechat.latency = 0.1

    async def main() -> List[str]:
        store = AsyncRedisStore.from_url(url, key_prefix=prefix)
        managers = [AsyncAccessTokenManager(config_for(fake_wechat), store) for _ in range(10)]
        try:
            return list(await asyncio.gather(*(manager.get() for manager in managers)))
        finally:
            for manager in managers:
                await manager.aclose()
            await store.aclose()

    tokens = asyncio.run(main())
    assert len(set(tokens)) == 1 and fake_wechat.token_calls == 1
    sync_store = RedisStore.from_url(url, key_prefix=prefix)
    wsgi_worker = AccessTokenManager(config_for(fake_wechat), sync_store)
    assert wsgi_worker.get() == tokens[0]  # a WSGI worker on the same Redis reads the same one
    assert fake_wechat.token_calls == 1
    wsgi_worker.close()
    sync_store.close()


# --- nothing secret in logs or errors ---


def test_no_secret_or_token_in_logs_or_errors(
    fake_wechat: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    session = log_in(fake_wechat)
    phone_code = fake_wechat.issue_phone_code()
    errors: List[WxError] = []

    def collect(call: Any) -> None:
        try:
            call()
        except WxError as error:
            errors.append(error)

    for stable in (True, False):
        api = WxApi(config_for(fake_wechat), MemoryStore(), stable_token=stable)
        api.check_session(session)
        fake_wechat.expire_access_tokens()
        collect(partial(api.get_phone_number, phone_code))  # the second time: InvalidCode
        fake_wechat.inject("errcode", count=2, errcode=40001, path=PHONE_NUMBER_PATH)
        collect(partial(api.get_phone_number, "another-code"))
        api.close()

    async def asynchronous() -> None:
        api = AsyncWxApi(config_for(fake_wechat), AsyncMemoryStore())
        await api.check_session(session)
        fake_wechat.expire_access_tokens()
        try:
            await api.get_phone_number(phone_code)
        except WxError as error:
            errors.append(error)
        await api.aclose()

    asyncio.run(asynchronous())

    # WeChat unreachable, with the secret in the query string (/cgi-bin/token).
    down = WxConfig(
        appid=fake_wechat.appid,
        secret=fake_wechat.secret,
        api_base="http://127.0.0.1:9",
        connect_timeout=0.5,
    )
    unreachable = WxApi(down, MemoryStore(), stable_token=False)
    collect(unreachable.access_token)
    unreachable.close()

    assert {type(error) for error in errors} == {
        AccessTokenRejected,
        InvalidCode,
        UpstreamUnreachable,
    }
    logged = [record.getMessage() for record in caplog.records]
    assert any("/wxa/business/getuserphonenumber" in line for line in logged)  # we read them
    assert any("access token: fetched from" in line for line in logged)
    shown = "\n".join(logged + [f"{e} {e.message} {e.detail} {e!r}" for e in errors])
    secrets = [fake_wechat.secret, phone_code, session.session_key]
    secrets += fake_wechat.issued_access_tokens
    assert len(fake_wechat.issued_access_tokens) >= 4
    for secret in secrets:
        assert secret not in shown


def test_a_wedged_refresher_makes_the_others_give_up_in_bounded_time(
    fake_wechat: FakeWeChat,
) -> None:
    config = config_for(fake_wechat, connect_timeout=0.1, read_timeout=0.1)
    store = MemoryStore()
    policy = TokenPolicy(config)
    assert store.acquire_lock(policy.name, 60) is not None  # held, and not coming back soon
    manager = AccessTokenManager(config, store)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        manager.get()
    assert policy.lock_ttl <= time.monotonic() - started < policy.lock_ttl + 3
    assert fake_wechat.token_calls == 0
    manager.close()
