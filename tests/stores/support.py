"""What the store tests share: sessions to save, and asynchronous stores driven synchronously."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from wxmiddleware.session import WxSession, new_token

IDLE = 7200


def make_session(openid: str = "o-alice", max_age: float = 30 * 86400, **extra: str) -> WxSession:
    """A session of ``openid`` created now (``time.time()``, fake or real) for ``max_age`` s."""
    now = time.time()
    return WxSession(
        openid=openid,
        session_key=extra.get("session_key", "sk-" + new_token()),
        unionid=extra.get("unionid"),
        created_at=now,
        expires_at=now + max_age,
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
