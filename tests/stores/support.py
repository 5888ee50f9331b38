"""What the store tests share: sessions to save, and asynchronous stores driven synchronously."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from wxmiddleware import WxConfig
from wxmiddleware._sealing import Sealer
from wxmiddleware.session import SessionScope, WxSession, new_token

IDLE = 7200
#: The app whose sessions the store tests save and read (sealed under a test key).
SCOPE = SessionScope("wx-test-app", Sealer(["test-store-key-0123456789"]))


def app_scope(fake: Any) -> SessionScope:
    """The scope in which a middleware configured for the fake WeChat ``fake`` keeps its
    sessions (its appid, and a key derived from its secret)."""
    return SessionScope.for_config(WxConfig(appid=fake.appid, secret=fake.secret))


def make_session(openid: str = "o-alice", max_age: float = 30 * 86400, **extra: str) -> WxSession:
    """A session of ``openid`` created now (``time.time()``, fake or real) for ``max_age`` s."""
    now = time.time()
    return WxSession(
        openid=openid,
        session_key=extra.get("session_key", "sk-" + new_token()),
        unionid=extra.get("unionid"),
        created_at=now,
        expires_at=now + max_age,
        appid=SCOPE.appid,
    )


class Blocking:
    """Drives an asynchronous store from synchronous test code, in an event loop of its own,
    so that each contract test is written once for both kinds of store."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.store, name)
        return lambda *args, **kwargs: self.loop.run_until_complete(method(*args, **kwargs))

    def close(self) -> None:
        self.loop.run_until_complete(self.store.aclose())
        self.loop.close()
