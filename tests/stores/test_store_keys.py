"""Store keys from ``WX_STORE_KEY`` (issue 14), through the WSGI middleware on SQLite and Redis.

The configuration is read from the environment as an app reads it (``WxConfig.from_env()``,
``WX_SESSION_STORE`` naming the SQLite file); each step is a fresh middleware, as a
restarted worker with a new ``WX_STORE_KEY`` would be. A key is rotated by listing the new
one first and the old one second; once the old one is dropped, a session only it sealed is
absent: ``401``, never a ``500`` or a ``503``.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional

import pytest
from webtest import TestApp

from wxmiddleware import WxConfig, WxMiddleware
from wxmiddleware.testing import FakeWeChat

OLD_KEY = "old-store-key-0123456789"
NEW_KEY = "new-store-key-9876543210"


class Worker:
    """A middleware built from the environment as it is now, on ``store`` (``None``: the
    one ``WX_SESSION_STORE`` names, opened by the middleware)."""

    def __init__(self, store: Optional[Any]) -> None:
        self.seen: List[Dict[str, Any]] = []
        self.middleware = WxMiddleware(self.inner, config=WxConfig.from_env(), store=store)
        self.app = TestApp(self.middleware)

    def inner(self, environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        self.seen.append(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def login(self, fake: FakeWeChat, user: str) -> str:
        reply = self.app.post_json("/wx/login", {"code": fake.issue_code(user)})
        token: str = reply.json["3rd_session"]
        return token

    def session_key(self, token: str) -> Optional[str]:
        """The session_key the app sees for ``token``, or ``None`` after a 401."""
        reply = self.app.get("/api/me", headers={"3rd-session": token}, expect_errors=True)
        if reply.status_int == 401:
            assert reply.json["error"] == "invalid_session"
            return None
        assert reply.status_int == 200, reply.text
        key: str = self.seen[-1]["wxmiddleware.session_key"]
        return key


@pytest.fixture(params=["sqlite", "redis"])
def given_store(request: pytest.FixtureRequest) -> Iterator[Optional[Any]]:
    """``None`` for SQLite (the middleware opens ``WX_SESSION_STORE``); for Redis, a
    store under a key prefix of this test's own, which the workers share."""
    if request.param == "sqlite":
        yield None
        return
    from tests.redis_support import SHARED_URL, delete_prefixed, shared_client, unique_prefix
    from wxmiddleware.stores.redis import RedisStore

    client = shared_client()
    prefix = unique_prefix()
    store = RedisStore.from_url(SHARED_URL, key_prefix=prefix)
    yield store
    store.close()
    delete_prefixed(client, prefix)
    client.close()


def test_wx_store_key_rotation(
    fake_wechat_env: FakeWeChat, monkeypatch: pytest.MonkeyPatch, given_store: Optional[Any]
) -> None:
    fake = fake_wechat_env
    workers: List[Worker] = []

    def worker_with(store_key: Optional[str]) -> Worker:
        if store_key is None:
            monkeypatch.delenv("WX_STORE_KEY", raising=False)
        else:
            monkeypatch.setenv("WX_STORE_KEY", store_key)
        workers.append(Worker(given_store))
        return workers[-1]

    try:
        before = worker_with(OLD_KEY)
        assert before.middleware.config.store_key == (OLD_KEY,)
        phone, bob = before.login(fake, "alice"), before.login(fake, "bob")
        # Sealed under the store key, not the secret: a worker without WX_STORE_KEY (its
        # key derived from the app secret) opens neither.
        assert [worker_with(None).session_key(token) for token in (phone, bob)] == [None] * 2

        # Rotation: the new key first, the old one second.
        rotated = worker_with(f"{NEW_KEY},{OLD_KEY}")
        assert rotated.middleware.config.store_key == (NEW_KEY, OLD_KEY)
        assert rotated.session_key(phone) == fake.session_key_for("alice")
        assert rotated.session_key(bob) == fake.session_key_for("bob")
        # Alice logs in again meanwhile: her key goes into both of her sessions, under the
        # new key.
        pc = rotated.login(fake, "alice")

        # The old key dropped: Bob's session, sealed only under it, is absent, not an error.
        after = worker_with(NEW_KEY)
        assert after.session_key(bob) is None
        alice_key = fake.session_key_for("alice")
        assert [after.session_key(token) for token in (phone, pc)] == [alice_key] * 2
        # A worker left on the old key alone opens none of what the new key sealed.
        assert worker_with(OLD_KEY).session_key(pc) is None
    finally:
        for worker in workers:
            worker.middleware.close()
