"""A Sentinel failover under traffic: real ``redis-server`` and ``redis-sentinel`` processes.

A master, its replica and one Sentinel run on free loopback ports. Users log in through the
WSGI middleware on a Sentinel-managed client; the master is killed (SIGKILL, a crash) while
requests keep coming. What must hold: every answer meanwhile is ``200`` or a ``503`` JSON
answer (never a 500, never a hang past the socket timeout); once Sentinel has promoted the
replica, the sessions made before the kill resolve again without a restart (redis-py's
``SentinelConnectionPool`` asks Sentinel for the new master), and a new login lands on the
new master.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

redis = pytest.importorskip("redis")
sentinel_module = pytest.importorskip("redis.sentinel")

from webtest import TestApp  # noqa: E402 - after the importorskip that guards this module

from tests.redis_support import RedisServer, private_redis  # noqa: E402
from wxmiddleware import WxConfig, WxMiddleware  # noqa: E402
from wxmiddleware.session import token_key  # noqa: E402
from wxmiddleware.stores._redis_layout import token_id  # noqa: E402
from wxmiddleware.stores.redis import RedisStore  # noqa: E402
from wxmiddleware.testing import FakeWeChat  # noqa: E402

pytestmark = pytest.mark.redis

MASTER_NAME = "wx-failover"
#: How long the test waits for Sentinel to promote the replica: a bound on the wait, not a
#: timing the test asserts (Sentinel here declares the master down after 500 ms).
PROMOTION_WAIT = 60.0


def inner_app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
    body = (environ.get("wxmiddleware.openid") or "").encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Dict[str, RedisServer]]:
    """A master, a replica of it, and one Sentinel (quorum 1) watching the master."""
    with private_redis(tmp_path) as master:
        replica = RedisServer(tmp_path, "--replicaof", "127.0.0.1", str(master.port))
        sentinel_conf = tmp_path / "sentinel.conf"
        sentinel_conf.write_text(
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 2000\n"
            f"sentinel failover-timeout {MASTER_NAME} 5000\n"
        )
        sentinel = RedisServer(tmp_path, "--sentinel", config_file=sentinel_conf)
        try:
            replica.start()
            sentinel.start()
            wait_for(lambda: replica.client().info("replication")["master_link_status"] == "up")
            yield {"master": master, "replica": replica, "sentinel": sentinel}
        finally:
            sentinel.stop()
            replica.stop()


def wait_for(condition: Any, seconds: float = PROMOTION_WAIT) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s: {condition}")
        time.sleep(0.1)


def test_failover_under_traffic_keeps_sessions_and_moves_writes(
    topology: Dict[str, RedisServer], fake_wechat: FakeWeChat
) -> None:
    master, replica, sentinel = topology["master"], topology["replica"], topology["sentinel"]
    timeouts = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    nodes = [("127.0.0.1", sentinel.port)]
    client = sentinel_module.Sentinel(nodes, sentinel_kwargs=timeouts).master_for(
        MASTER_NAME, **timeouts
    )
    config = WxConfig(appid=fake_wechat.appid, secret=fake_wechat.secret, api_base=fake_wechat.url)
    app = TestApp(WxMiddleware(inner_app, config=config, store=RedisStore(client)))

    users = [f"user{n}" for n in range(5)]
    tokens = {
        user: app.post_json("/wx/login", {"code": fake_wechat.issue_code(user)}).json["3rd_session"]
        for user in users
    }
    # The sessions reach the replica before the crash (WAIT: replicated to one replica).
    assert master.client().wait(1, 5000) == 1
    # The Sentinel has not failed the master over on its own (a slow machine's missed pings).
    assert master.client().info("replication")["role"] == "master"

    master.kill()
    statuses: List[int] = []
    recovered = False
    deadline = time.monotonic() + PROMOTION_WAIT
    while time.monotonic() < deadline and not recovered:
        answers = [
            app.get("/api/me", headers={"3rd-session": tokens[user]}, expect_errors=True)
            for user in users
        ]
        for answer in answers:
            statuses.append(answer.status_int)
            assert answer.status_int in (200, 503), answer.text
            if answer.status_int == 503:
                assert answer.json["error"] == "store_unavailable"
        recovered = all(
            a.status_int == 200 and a.text == fake_wechat.openid_for(u)
            for a, u in zip(answers, users)
        )
        if not recovered:
            time.sleep(0.05)
    assert recovered, f"sessions did not resolve after the failover: {statuses[-10:]}"
    assert 503 in statuses  # the crash was seen, and answered as a store that is down
    assert replica.client().info("replication")["role"] == "master"

    # New writes land on the new master.
    token = app.post_json("/wx/login", {"code": fake_wechat.issue_code("late")}).json["3rd_session"]
    assert app.get("/api/me", headers={"3rd-session": token}).text == fake_wechat.openid_for("late")
    member = token_id(token_key(token))
    assert any(key.endswith(member.encode()) for key in replica.client().keys("*"))
    client.connection_pool.disconnect()
