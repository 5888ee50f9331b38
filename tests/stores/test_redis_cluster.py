"""RedisStore and AsyncRedisStore on a real three-master Redis Cluster started by the test.

A login through one app is resolved by another with its own ``RedisCluster`` client; the
keys of one login land on different masters, so every step has to work without cross-slot
commands.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any, Dict, Iterator, List

import pytest

redis = pytest.importorskip("redis")

from redis.asyncio.cluster import ClusterNode as AsyncClusterNode  # noqa: E402
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster  # noqa: E402
from redis.cluster import ClusterNode, RedisCluster  # noqa: E402
from webtest import TestApp  # noqa: E402

from tests.redis_support import RedisServer, redis_cluster, unique_prefix  # noqa: E402
from tests.stores.support import SCOPE, Blocking, app_scope  # noqa: E402
from wxmiddleware import AsyncWxApi, WxApi, WxConfig, WxMiddleware  # noqa: E402
from wxmiddleware.session import (  # noqa: E402
    ClaimState,
    SessionScope,
    WxSession,
    claim_used,
    code_key,
    new_token,
    seal_token,
    short_hash,
    token_key,
)
from wxmiddleware.stores._redis_layout import token_id  # noqa: E402
from wxmiddleware.stores.redis import AsyncRedisStore, RedisStore  # noqa: E402
from wxmiddleware.testing import FakeWeChat  # noqa: E402

pytestmark = pytest.mark.redis

IDLE = 7200
CLIENT_OPTIONS: Dict[str, Any] = {"socket_timeout": 1, "socket_connect_timeout": 1}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[List[RedisServer]]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as servers:
        yield servers


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


def cluster_client(servers: List[RedisServer]) -> Any:
    nodes = [ClusterNode("127.0.0.1", server.port) for server in servers]
    return RedisCluster(startup_nodes=nodes, **CLIENT_OPTIONS)


def keys_per_master(servers: List[RedisServer], prefix: str) -> List[List[str]]:
    """Each master's own keys under ``prefix`` (KEYS on a cluster node lists only its own)."""
    found = []
    for server in servers:
        client = server.client()
        found.append(sorted(key.decode() for key in client.keys(prefix + "*")))
        client.close()
    return found


def inner_app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"openid": environ["wxmiddleware.openid"]}).encode()]


def make_app(fake: FakeWeChat, store: RedisStore, **options: Any) -> TestApp:
    config = WxConfig(appid=fake.appid, secret=fake.secret, api_base=fake.url, **options)
    return TestApp(WxMiddleware(inner_app, config=config, store=store))


def login(app: TestApp, code: str) -> str:
    token: str = app.post_json("/wx/login", {"code": code}).json["3rd_session"]
    return token


def me(app: TestApp, token: str) -> Any:
    return app.get("/api/me", headers={"3rd-session": token}, expect_errors=True)


def test_login_on_one_app_is_resolved_by_another(
    cluster: List[RedisServer], fake_wechat: FakeWeChat, prefix: str
) -> None:
    store_a = RedisStore(cluster_client(cluster), key_prefix=prefix)
    store_b = RedisStore(cluster_client(cluster), key_prefix=prefix)
    app_a, app_b = make_app(fake_wechat, store_a), make_app(fake_wechat, store_b)
    openid = fake_wechat.openid_for("alice")

    token = login(app_a, fake_wechat.issue_code("alice"))
    response = me(app_b, token)
    assert response.status_int == 200
    assert response.json == {"openid": openid}

    # A retry of the same code through the other app gets the same session, one WeChat call.
    code = fake_wechat.issue_code("alice")
    calls = fake_wechat.jscode2session_calls
    retried = login(app_a, code)
    assert login(app_b, code) == retried
    assert fake_wechat.jscode2session_calls == calls + 1

    assert [info.openid for info in store_b.sessions_for(openid)] == [openid, openid]

    # Logout through one app ends the session for the other.
    assert app_b.post("/wx/logout", headers={"3rd-session": token}).status_int == 204
    assert me(app_a, token).status_int == 401
    assert me(app_a, retried).status_int == 200

    # revoke_all through one client ends every session of the user for both.
    others = [login(app_b, fake_wechat.issue_code("alice")) for _ in range(3)]
    bob = login(app_a, fake_wechat.issue_code("bob"))
    # Each login brought a new key; every token of the user, read through either client,
    # holds the newest one.
    newest = fake_wechat.session_key_for("alice")
    for token in [retried, *others]:
        for store in (store_a, store_b):
            found = store.get(token, IDLE, app_scope(fake_wechat))
            assert found is not None and found.session_key == newest
    # Sessions, openid indexes and code records are spread over the masters.
    placed = keys_per_master(cluster, prefix)
    assert sum(len(keys) for keys in placed) == 5 + 2 + 6
    assert sum(1 for keys in placed if keys) >= 2, placed
    assert store_a.revoke_all(openid, app_scope(fake_wechat)) == 4
    for ended in [retried, *others]:
        assert me(app_a, ended).status_int == 401
        assert me(app_b, ended).status_int == 401
    assert me(app_b, bob).status_int == 200
    assert store_b.sessions_for(openid) == []
    store_a.client.close()
    store_b.client.close()


def test_cluster_claims_and_releases_codes(cluster: List[RedisServer], prefix: str) -> None:
    store = RedisStore(cluster_client(cluster), key_prefix=prefix)
    key = code_key("code-1")
    assert store.claim_code(key, 300).state is ClaimState.OWNER
    assert store.claim_code(key, 300).state is ClaimState.PENDING
    store.release_code(key)
    assert store.claim_code(key, 300).state is ClaimState.OWNER
    token = new_token()
    session = WxSession("o-carol", "sk", None, 0.0, 4e9, SCOPE.appid)
    store.save(token, session, IDLE, SCOPE, key, seal_token("code-1", token))
    store.release_code(key)
    assert store.claim_code(key, 300) == claim_used(seal_token("code-1", token))
    assert store.delete(token) is True
    assert store.delete(token) is False
    store.client.close()


def test_async_cluster_client(
    cluster: List[RedisServer], fake_wechat: FakeWeChat, prefix: str
) -> None:
    sync_store = RedisStore(cluster_client(cluster), key_prefix=prefix)
    token = login(make_app(fake_wechat, sync_store), fake_wechat.issue_code("alice"))
    openid = fake_wechat.openid_for("alice")

    async def main() -> None:
        nodes = [AsyncClusterNode("127.0.0.1", server.port) for server in cluster]
        client = AsyncRedisCluster(startup_nodes=nodes, **CLIENT_OPTIONS)
        store = AsyncRedisStore(client, key_prefix=prefix)
        found = await store.get(token, IDLE, app_scope(fake_wechat))
        assert found is not None and found.openid == openid

        mine = new_token()
        key = code_key("async-code")
        assert (await store.claim_code(key, 300)).state is ClaimState.OWNER
        assert (await store.claim_code(key, 300)).state is ClaimState.PENDING
        session = WxSession(openid, "sk", None, found.created_at, found.expires_at, SCOPE.appid)
        await store.save(mine, session, IDLE, SCOPE, key, seal_token("async-code", mine))
        assert await store.claim_code(key, 300) == claim_used(seal_token("async-code", mine))
        assert len(await store.sessions_for(openid)) == 2
        assert sync_store.get(mine, IDLE, SCOPE) == session

        assert await store.delete(mine) is True
        assert await store.revoke_all(openid, app_scope(fake_wechat)) == 1
        assert await store.get(token, IDLE, SCOPE) is None
        await client.aclose()

    asyncio.run(main())
    assert sync_store.get(token, IDLE, SCOPE) is None
    sync_store.client.close()


@pytest.fixture(params=["sync", "async"])
def either_store(
    request: pytest.FixtureRequest, cluster: List[RedisServer], prefix: str
) -> Iterator[Any]:
    """A RedisStore, or an AsyncRedisStore driven through Blocking, on its own Cluster
    client."""
    if request.param == "sync":
        store = RedisStore(cluster_client(cluster), key_prefix=prefix)
        yield store
        store.client.close()
        return
    nodes = [AsyncClusterNode("127.0.0.1", server.port) for server in cluster]

    async def open_client() -> Any:
        # Made in the loop that drives it: Python 3.9's asyncio.Lock() takes the current loop.
        return AsyncRedisCluster(startup_nodes=nodes, **CLIENT_OPTIONS)

    blocking = Blocking(None)
    client = blocking.loop.run_until_complete(open_client())
    blocking.store = AsyncRedisStore(client, key_prefix=prefix)
    yield blocking
    blocking.loop.run_until_complete(client.aclose())
    blocking.close()


def reset_key(store: Any, config: WxConfig, session: WxSession) -> WxSession:
    """``reset_session_key`` through WxApi on a sync store, AsyncWxApi on an async one."""
    if isinstance(store, Blocking):

        async def run() -> WxSession:
            api = AsyncWxApi(config, store.store)
            try:
                return await api.reset_session_key(session)
            finally:
                await api.aclose()

        reset: WxSession = store.loop.run_until_complete(run())
        return reset
    api = WxApi(config, store)
    try:
        return api.reset_session_key(session)
    finally:
        api.close()


def test_one_current_key_per_user_on_a_cluster(
    cluster: List[RedisServer], fake_wechat: FakeWeChat, prefix: str, either_store: Any
) -> None:
    """Logins through one client, keys read and reset through the other (sync or async):
    every session of the user, on whichever master, holds WeChat's current key."""
    store = either_store
    logins = RedisStore(cluster_client(cluster), key_prefix=prefix)
    # Ten sessions: all on one of the three masters only once in 3**9 runs.
    app = make_app(fake_wechat, logins, max_sessions_per_user=10)
    config = app.app.config
    scope = app_scope(fake_wechat)
    openid = fake_wechat.openid_for("alice")
    tokens = [login(app, fake_wechat.issue_code("alice"))]
    first_key = fake_wechat.session_key_for("alice")
    tokens += [login(app, fake_wechat.issue_code("alice")) for _ in range(9)]
    assert fake_wechat.session_key_for("alice") != first_key  # each login brought a new key
    keys = {store.get(token, IDLE, scope).session_key for token in tokens}
    assert keys == {fake_wechat.session_key_for("alice")}
    # The sessions are spread over the masters, so the key went to more than one of them.
    members = [token_id(token_key(token)) for token in tokens]
    sessions_on = [
        sum(1 for key in placed if key.split(":")[-1] in members)
        for placed in keys_per_master(cluster, prefix + "s:")
    ]
    assert sum(1 for count in sessions_on if count) >= 2, sessions_on

    reset = reset_key(store, config, store.get(tokens[0], IDLE, scope))
    assert reset.session_key == fake_wechat.session_key_for("alice")
    assert reset.session_key not in keys
    for token in tokens:
        assert store.get(token, IDLE, scope).session_key == reset.session_key
        assert logins.get(token, IDLE, scope).session_key == reset.session_key
    # set_session_key reaches them all too, and says how many the user has.
    assert store.set_session_key(openid, "k-set", time.time() + 1, scope) == 10
    assert {logins.get(token, IDLE, scope).session_key for token in tokens} == {"k-set"}
    logins.client.close()


def test_the_cap_and_apps_on_a_cluster(either_store: Any) -> None:
    """Two apps with one openid (as a third-party platform's apps may have): the key, the
    cap and revoke_all each touch one app's sessions."""
    store = either_store
    scope_a = dataclasses.replace(SCOPE, max_sessions=3)
    scope_b = dataclasses.replace(scope_a, appid="wx-other-app")
    now = time.time()

    def save(scope: SessionScope, key: str, age: int) -> str:
        token = new_token()
        created = now - 100 + age  # a later login is a younger session with a newer key
        store.save(token, WxSession("o-alice", key, None, created, created + 3600), IDLE, scope)
        return token

    a_tokens = [save(scope_a, f"k-a{n}", n) for n in range(3)]
    b_tokens = [save(scope_b, f"k-b{n}", 10 + n) for n in range(2)]
    assert [store.get(t, IDLE, scope_a).session_key for t in a_tokens] == ["k-a2"] * 3
    assert [store.get(t, IDLE, scope_b).session_key for t in b_tokens] == ["k-b1"] * 2
    # A token is found in its own app's scope only.
    assert [store.get(t, IDLE, scope_b) for t in a_tokens] == [None] * 3
    assert [store.get(t, IDLE, scope_a) for t in b_tokens] == [None] * 2

    # A fourth login in app A ends A's oldest session, none of B's.
    a_tokens.append(save(scope_a, "k-a3", 20))
    assert store.get(a_tokens[0], IDLE, scope_a) is None
    assert [store.get(t, IDLE, scope_a).session_key for t in a_tokens[1:]] == ["k-a3"] * 3
    assert [store.get(t, IDLE, scope_b).session_key for t in b_tokens] == ["k-b1"] * 2
    assert store.set_session_key("o-alice", "k-b-reset", time.time() + 1, scope_b) == 2
    assert [store.get(t, IDLE, scope_a).session_key for t in a_tokens[1:]] == ["k-a3"] * 3

    assert store.revoke_all("o-alice", scope_b) == 2
    assert [store.get(t, IDLE, scope_b) for t in b_tokens] == [None] * 2
    assert [store.get(t, IDLE, scope_a) is not None for t in a_tokens[1:]] == [True] * 3
    assert {info.appid for info in store.sessions_for("o-alice")} == {scope_a.appid}
    assert store.revoke_all("o-alice", scope_a) == 3
    assert store.sessions_for("o-alice") == []


def test_cluster_values_locks_revoke_and_purge(
    cluster: List[RedisServer], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No maintenance step on a save: on a slow machine the first short sessions could expire
    # and be unindexed by one before the purge below counts them.
    monkeypatch.setattr("wxmiddleware.stores._redis_ops.MAINTENANCE_EVERY", 10**9)
    store = RedisStore(cluster_client(cluster), key_prefix=prefix)
    store.set_value("access_token:wx1", "t-1", 60)
    assert store.get_value("access_token:wx1") == "t-1"
    owner = store.acquire_lock("refresh", 30)
    assert owner is not None and store.acquire_lock("refresh", 30) is None
    assert store.release_lock("refresh", owner) is True

    now = time.time()
    kept = new_token()
    store.save(kept, WxSession("o-kept", "sk", None, now, now + 3600), IDLE, SCOPE)
    named = new_token()
    store.save(named, WxSession("o-kept", "sk", None, now, now + 3600), IDLE, SCOPE)
    assert store.revoke_session("o-kept", short_hash(token_key(named))) is True
    # Indexes of many users, on every master, whose sessions Redis expires.
    for index in range(30):
        store.save(new_token(), WxSession(f"o-{index}", "sk", None, now, now + 3600), 1, SCOPE)
    assert sum(1 for keys in keys_per_master(cluster, prefix + "o:") if keys) == 3
    time.sleep(1.1)
    reports: List[int] = []
    assert store.purge_expired(reports.append) == 30
    assert reports[-1] == 30
    assert store.get(kept, IDLE, SCOPE) is not None

    async def main() -> None:
        nodes = [AsyncClusterNode("127.0.0.1", server.port) for server in cluster]
        client = AsyncRedisCluster(startup_nodes=nodes, **CLIENT_OPTIONS)
        async_store = AsyncRedisStore(client, key_prefix=prefix)
        assert await async_store.get_value("access_token:wx1") == "t-1"
        assert await async_store.purge_expired() == 0
        assert await async_store.revoke_session("o-kept", short_hash(token_key(kept))) is True
        await client.aclose()

    asyncio.run(main())
    store.client.close()


def test_cluster_has_three_masters(cluster: List[RedisServer]) -> None:
    client = cluster_client(cluster)
    assert len(client.get_primaries()) == 3
    client.close()
