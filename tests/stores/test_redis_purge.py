"""Redis's expiry maintenance while another process writes: every entry of a session Redis
has expired leaves its user's index, and no live session's entry does.

Redis deletes sessions by their TTLs; ``purge_expired`` walks the per-user indexes with
``SCAN`` in batches and removes the entries whose session is gone. Meanwhile a second
process keeps logging users in, some of them users whose indexes the purge is walking.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Iterator, List

import pytest

redis = pytest.importorskip("redis")

from tests.redis_support import SHARED_URL, delete_prefixed, shared_client, unique_prefix  # noqa: E402
from tests.stores.support import SCOPE, make_session  # noqa: E402
from wxmiddleware.session import new_token, token_key  # noqa: E402
from wxmiddleware.stores import _redis_layout as layout  # noqa: E402
from wxmiddleware.stores.base import PURGE_BATCH  # noqa: E402
from wxmiddleware.stores.redis import RedisStore  # noqa: E402

pytestmark = pytest.mark.redis

IDLE = 7200
EXPIRED_USERS = PURGE_BATCH + 200  # more than one batch of indexes
LIVE_USERS = 50


@pytest.fixture
def prefix() -> Iterator[str]:
    client = shared_client()
    chosen = unique_prefix()
    yield chosen
    delete_prefixed(client, chosen)
    client.close()


def _keep_logging_in(prefix: str, seconds: float, tokens: multiprocessing.Queue[str]) -> None:
    store = RedisStore.from_url(SHARED_URL, key_prefix=prefix)
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        token = new_token()
        # Half of them users whose old sessions expired: their indexes change under the purge
        # (one new session each: the per-user cap never ends one of these).
        gone_user = n // 2
        openid = f"o-gone-{gone_user}" if n % 2 and gone_user < EXPIRED_USERS else f"o-new-{n}"
        store.save(token, make_session(openid), IDLE, SCOPE)
        tokens.put(f"{openid} {token}")
        n += 1
    tokens.put("")
    store.close()


def test_purge_removes_every_expired_entry_and_no_live_one_while_another_process_writes(
    prefix: str,
) -> None:
    client = redis.Redis.from_url(SHARED_URL)
    store = RedisStore.from_url(SHARED_URL, key_prefix=prefix)
    for n in range(EXPIRED_USERS):
        store.save(new_token(), make_session(f"o-gone-{n}"), 1, SCOPE)  # 1 s idle TTL
    live = {f"o-live-{n}": new_token() for n in range(LIVE_USERS)}
    for openid, token in live.items():
        store.save(token, make_session(openid), IDLE, SCOPE)
    time.sleep(1.2)  # Redis expires the short sessions; their index entries stay

    spawn = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = spawn.Queue()
    writer = spawn.Process(target=_keep_logging_in, args=(prefix, 4.0, queue))
    writer.start()
    try:
        time.sleep(0.5)  # the writer is under way before the purge starts
        reports: List[int] = []
        purged = store.purge_expired(reports.append)
        written: List[str] = []
        while True:
            entry = queue.get(timeout=30)
            if not entry:
                break
            written.append(entry)
    finally:
        writer.join(30)
    assert writer.exitcode == 0
    assert written, "the other process wrote nothing"
    # A login of a user whose old session expired may clear that stale entry itself (it
    # lists the user's sessions for the cap) before the purge gets there.
    relogged = sum(1 for entry in written if entry.startswith("o-gone-"))
    assert EXPIRED_USERS - relogged <= purged <= EXPIRED_USERS
    assert len(reports) >= 2  # more than one batch of indexes

    keys = layout.Keys(prefix)
    # No index entry names a session that is gone ...
    for index in client.scan_iter(match=keys.index_pattern(), count=500):
        for member in client.zrange(index, 0, -1):
            assert client.exists(keys.session(member.decode())), "a stale entry survived"
    # ... and every live session, old or written during the purge, resolves and is indexed.
    everyone = list(live.items()) + [tuple(entry.split(" ")) for entry in written]
    for openid, token in everyone:
        assert store.get(token, IDLE, SCOPE) is not None
        member = layout.token_id(token_key(token))
        assert client.zscore(keys.index(openid), member) is not None
    store.close()
    client.close()
