"""Redis's expiry maintenance: every entry of a session Redis has expired leaves its user's
index, and no live session's entry does.

Redis deletes sessions by their TTLs; ``purge_expired`` walks the per-user indexes with
``SCAN`` in batches and removes the entries whose session is gone, while a second process
keeps logging users in, some of them users whose indexes the purge is walking. Without any
``purge_expired``, a store's ordinary saves take the same walk a page at a time, so the
indexes of users whose sessions all ended go by themselves (on a private server, whose
keyspace is the test's alone).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

redis = pytest.importorskip("redis")

from tests.redis_support import (  # noqa: E402
    SHARED_URL,
    delete_prefixed,
    private_redis,
    shared_client,
    unique_prefix,
)
from tests.stores.support import SCOPE, make_session  # noqa: E402
from wxmiddleware.session import new_token, token_key  # noqa: E402
from wxmiddleware.stores import _redis_layout as layout  # noqa: E402
from wxmiddleware.stores.base import PURGE_BATCH  # noqa: E402
from wxmiddleware.stores.redis import AsyncRedisStore, RedisStore  # noqa: E402

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


GONE_USERS = 300  # their index keys span several SCAN pages of a step
STEPS = 100  # far more steps than the pages of this keyspace


def _fill(client: Any, prefix: str) -> Dict[str, str]:
    # Users whose only session ends, and users with one ended and one live session; a new
    # store object every MAINTENANCE_EVERY - 1 saves, so that no purge step runs meanwhile.
    saves = [(new_token(), f"o-gone-{n}", 1) for n in range(GONE_USERS)]
    live = {new_token(): f"o-live-{n}" for n in range(20)}
    saves += [(new_token(), openid, 1) for openid in live.values()]
    saves += [(token, openid, IDLE) for token, openid in live.items()]
    for n, (token, openid, idle) in enumerate(saves):
        if n % (layout.MAINTENANCE_EVERY - 1) == 0:
            store = RedisStore(client, key_prefix=prefix)
        store.save(token, make_session(openid), idle, SCOPE)
    return live


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_saves_remove_the_indexes_of_users_whose_sessions_all_ended(
    flavour: str, tmp_path: Path
) -> None:
    with private_redis(tmp_path) as server:
        client = server.client()
        keys = layout.Keys(unique_prefix())
        live = _fill(client, keys.prefix)
        time.sleep(1.2)  # Redis expires the short sessions; their users' indexes linger
        gone = [keys.index(f"o-gone-{n}") for n in range(GONE_USERS)]
        assert client.exists(*gone) == GONE_USERS

        # Ordinary logins of new users; how many indexes linger just before and just after
        # each MAINTENANCE_EVERY-th save, until none does.
        every = layout.MAINTENANCE_EVERY
        lingering: List[int] = []

        def saved(n: int) -> bool:
            if n % every in (every - 2, every - 1):
                lingering.append(client.exists(*gone))
            return lingering[-1:] == [0]

        def new_login(n: int) -> Any:
            token = new_token()
            live[token] = f"o-new-{n}"
            return (token, make_session(f"o-new-{n}"), IDLE, SCOPE)

        if flavour == "sync":
            store = RedisStore.from_url(server.url(), key_prefix=keys.prefix)
            for n in range(STEPS * every):
                store.save(*new_login(n))
                if saved(n):
                    break
            store.close()
        else:

            async def main() -> None:
                store = AsyncRedisStore.from_url(server.url(), key_prefix=keys.prefix)
                for n in range(STEPS * every):
                    await store.save(*new_login(n))
                    if saved(n):
                        break
                await store.aclose()

            asyncio.run(main())

        # None went before the first step, some at it, and the last at a later one: the walk
        # resumed where it stopped.
        assert lingering[0] == GONE_USERS and lingering[1] < GONE_USERS
        assert lingering[-1] == 0 and len(lingering) > 2
        # Every live session resolves and is its user's only index entry: the ended ones'
        # entries went, and no live one did.
        check = RedisStore(client, key_prefix=keys.prefix)
        for token, openid in live.items():
            assert check.get(token, IDLE, SCOPE) is not None
            member = layout.token_id(token_key(token)).encode()
            assert client.zrange(keys.index(openid), 0, -1) == [member]
        client.close()
