"""RedisStore and AsyncRedisStore: sessions shared by many processes and machines.

Install with ``pip install "wxmiddleware[redis]"``; this module is the only one that imports
redis-py. Both stores work over a client you build (``redis.Redis``, ``redis.cluster.RedisCluster``,
a Sentinel ``master_for(...)`` client, or their ``redis.asyncio`` twins), or over one that
``from_url`` builds with timeouts fit for a web request (see :func:`request_path_options`).
Redis 6.2 or newer is needed (``GETEX``, ``GETDEL``).

Key layout (``key_prefix`` defaults to ``wx:``; ``id(token)`` is ``sha256(token)`` in
unpadded base64url, :func:`~wxmiddleware.stores._redis_layout.token_id`)::

    wx:s:<id(token)>        string      the session record (stores/_records.py, its
                                        session_key sealed); TTL: the idle timeout, capped
                                        at the absolute expiry
    wx:o:<sha256(openid)[:16], base64url>
                            sorted set  id(token) of each session of the openid, scored
                                        by its absolute expiry; TTL: the latest of them
    wx:c:<code_key>         string      a login code's record: "p:<nonce>" while a login owns
                                        it, then the token sealed under the code; TTL: code_ttl
    wx:v:<name>             string      a shared value (set_value); TTL: the one given
    wx:l:<name>             string      a lock's owner token (acquire_lock); TTL: the one given

No key or value holds a token in clear. An authenticated request costs one command,
``GETEX wx:s:<hash> EX <idle_ttl>``, which returns the session and slides its idle timeout
(the slide rides on the read, so every use moves it: see
:func:`wxmiddleware.session.deadline_after_use`); only in the last ``idle_ttl`` seconds of a
session's absolute lifetime does a second command (``PEXPIRE``) cap the key's TTL at that
expiry. The absolute expiry is in the value and is checked on every read.

Each operation is written once, in :mod:`wxmiddleware.stores._redis_ops`, as a generator of
round trips; :class:`RedisStore` and :class:`AsyncRedisStore` only run them, each with its
own small runner, over their own clients.

Why no hash tags: ``get`` knows only the token, ``revoke_all`` only the openid (it ends
the sessions of its app, which each record names, one script per session) and
``claim_code`` only the code's hash, so each of the three keys must be derivable from its own
input alone, and no two of them can be made to share a slot. Every command and script therefore
touches exactly one key, and a Cluster never sees a cross-slot command; without tags, sessions
spread evenly over the masters. (A ``key_prefix`` with a tag, such as ``{wx}:``, pins
everything to one slot: it works, but gives up sharding.)

A login writes the index entry, the session and the code record. On a single Redis (or a
Sentinel master) that is one ``MULTI``/``EXEC`` round trip, atomic. On a Cluster the three keys
live in different slots, where no transaction can cover them, so the index entry is written
first and the session and code record after it: a failure in between leaves at most an index
entry pointing at nothing, never a session that ``revoke_all`` cannot find.

A lock is ``SET NX PX`` (with a ``GET`` in the same round trip, so that a retried ``SET``
still recognises its own owner token) and is released by a compare-and-delete script: one
key each, like everything else.

Redis expires sessions and records by their TTLs. What it cannot expire are the entries of
sessions that went idle in their openid's index, nor so the index of a user who never comes
back (its TTL is its longest session's absolute expiry). Every
:data:`~wxmiddleware.stores._redis_layout.MAINTENANCE_EVERY`-th save of a store object takes
one more step of a ``SCAN`` walk of the indexes (one page, ``COUNT``
:data:`~wxmiddleware.stores._redis_layout.STEP_COUNT`) and removes the entries of sessions
that are gone, one ``ZREM`` per index, so an index whose sessions have all ended goes too;
:meth:`RedisStore.purge_expired` walks them all at once, for a cron job. An authenticated
request never does any of this.

Every redis-py error becomes :class:`~wxmiddleware.errors.StoreUnavailable` (a 503: the
middleware fails closed) with a generic client message; its ``detail``, for the log, names the
cause and a session only by a short hash. A client recovers by itself when Redis returns.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Literal,
    Optional,
    Tuple,
    TypeVar,
    Union,
)

import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ConstantBackoff
from redis.cluster import RedisCluster
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from ..errors import ConfigError
from ._redis_layout import Batch, Cursor, Keys, Operation, ScanPage, scan_call, scan_page
from ._redis_ops import RedisOperations, RedisStoreMethods
from ._redis_steps import Steps

__all__ = ["AsyncRedisStore", "RedisStore", "request_path_options"]

#: A synchronous client: plain, Sentinel-managed (``master_for``) or Cluster.
SyncClient = Union[redis.Redis, RedisCluster]
#: An asynchronous client: the ``redis.asyncio`` twins of :data:`SyncClient`.
AsyncClient = Union[redis.asyncio.Redis, AsyncRedisCluster]

#: Seconds to open a connection, and to wait for any answer, in clients ``from_url`` builds.
CONNECT_TIMEOUT = 0.5
SOCKET_TIMEOUT = 0.5
#: Seconds before the one retry of a command whose connection failed.
RETRY_BACKOFF = 0.05

_T = TypeVar("_T")
_ASYNC_CLIENTS = (redis.asyncio.Redis, AsyncRedisCluster)


# --- options for clients built from a URL ---


def request_path_options(retry_class: Callable[..., Any] = Retry) -> Dict[str, Any]:
    """The redis-py client options that ``from_url`` uses unless told otherwise.

    redis-py's own defaults (a 5 s socket timeout and up to ten retries) would hold a web
    request for many seconds while Redis is down. These give up within about half a second:

    - ``socket_connect_timeout`` and ``socket_timeout``: :data:`CONNECT_TIMEOUT`,
      :data:`SOCKET_TIMEOUT`.
    - ``retry``: one retry, after :data:`RETRY_BACKOFF` seconds, and only when the connection
      failed (refused or reset, typically a pooled connection that Redis closed when it
      restarted): a second attempt on a fresh connection usually succeeds at once. A timeout
      is not retried: a Redis that did not answer within the timeout will not answer the retry
      sooner, and the request would wait twice as long.
    - ``health_check_interval=0``: no ``PING`` before reusing an idle connection, so a request
      stays one round trip; a connection that Redis closed is noticed when the pool hands it
      out, and ``socket_keepalive`` lets the kernel find silently dropped ones.

    ``retry_class`` is ``redis.retry.Retry`` for synchronous clients and
    ``redis.asyncio.retry.Retry`` for asynchronous ones.
    """
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_keepalive": True,
        "health_check_interval": 0,
        "retry": retry_class(ConstantBackoff(RETRY_BACKOFF), 1, (RedisConnectionError,)),
    }


def _check_url(url: str) -> None:
    # Errors name only the scheme: the rest of the URL may hold a password.
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("redis", "rediss"):
        raise ConfigError("a Redis store URL starts with redis:// or rediss://")
    try:
        parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError:
        raise ConfigError(f"the {scheme}:// store URL is malformed") from None


def _is_cluster(client: Any) -> bool:
    return isinstance(client, (RedisCluster, AsyncRedisCluster))


# --- the synchronous store ---


def _send(client: SyncClient, batch: Batch) -> List[Any]:
    """One round trip: the batch's replies, in order."""
    if len(batch.commands) == 1 and not batch.transaction:
        # execute_command is untyped in redis-py, and its reply depends on the command.
        untyped: Any = client
        return [untyped.execute_command(*batch.commands[0])]
    pipe = client.pipeline(transaction=batch.transaction)
    for command in batch.commands:
        pipe.execute_command(*command)
    replies: List[Any] = pipe.execute()
    return replies


def _scan(client: SyncClient, keys: Keys, request: ScanPage) -> Tuple[Cursor, List[str]]:
    """One ``SCAN`` page of index keys: the cursor after it and the keys."""
    cursor, options = scan_call(client, keys, request)
    return scan_page(request.cursor, client.scan(cursor, **options))


class RedisStore(RedisStoreMethods):
    """A :class:`~wxmiddleware.stores.base.SessionStore` in Redis, shared by many machines.

    ``client`` is a ``redis.Redis``, a ``redis.cluster.RedisCluster`` or a Sentinel
    ``master_for(...)`` client; its timeouts and retries are yours to choose (or use
    :meth:`from_url`, which picks request-path ones). redis-py clients are thread-safe and
    reconnect in a child after ``fork()``, so one store may be created at import time.
    ``key_prefix`` starts every key (a :class:`~wxmiddleware.errors.ConfigError` unless a
    string). Every redis-py error is raised as
    :class:`~wxmiddleware.errors.StoreUnavailable`.

    .. code-block:: python

        store = RedisStore.from_url("redis://cache:6379/0")
        # or: RedisStore(redis.cluster.RedisCluster(host="node1", port=7000))
        app.wsgi_app = WxMiddleware(app.wsgi_app, config=config, store=store)

    See the module docstring for the key layout and the commands each method sends.
    """

    #: Which runner this store is (:mod:`wxmiddleware.stores._operations`).
    asynchronous: Literal[False] = False

    def __init__(self, client: SyncClient, *, key_prefix: str = "wx:") -> None:
        self._client = client
        self._operations = RedisOperations(Keys(key_prefix), _is_cluster(client))
        self._owns_client = False

    @classmethod
    def from_url(cls, url: str, *, key_prefix: str = "wx:", **options: Any) -> RedisStore:
        """A store over a new ``redis.Redis`` client for a ``redis://`` or ``rediss://`` URL.

        ``options`` go to ``redis.Redis.from_url`` and override :func:`request_path_options`;
        options in the URL's query string (``?socket_timeout=1``) override both. The store
        owns this client, so :meth:`close` closes it. A malformed URL is a
        :class:`~wxmiddleware.errors.ConfigError` that names only its scheme.
        """
        _check_url(url)
        client = redis.Redis.from_url(url, **{**request_path_options(Retry), **options})
        store = cls(client, key_prefix=key_prefix)
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        return f"RedisStore(key_prefix={self._operations.keys.prefix!r})"

    @property
    def client(self) -> SyncClient:
        """The redis-py client the store talks through."""
        return self._client

    def _run(self, start: Callable[..., Operation[_T]], *args: Any, **kwargs: Any) -> _T:
        client = self._client
        keys = self._operations.keys
        steps = Steps(start(self._operations, *args, **kwargs))
        for request in steps:
            with steps.answering():
                steps.reply = (
                    _send(client, request)
                    if isinstance(request, Batch)
                    else _scan(client, keys, request)
                )
        return steps.result

    def close(self) -> None:
        """Close the client if :meth:`from_url` made it; a client passed in stays yours."""
        if self._owns_client:
            self._client.close()


# --- the asynchronous store ---


async def _send_async(client: AsyncClient, batch: Batch) -> List[Any]:
    """One round trip: the batch's replies, in order."""
    if len(batch.commands) == 1 and not batch.transaction:
        return [await client.execute_command(*batch.commands[0])]
    pipe = client.pipeline(transaction=batch.transaction)
    for command in batch.commands:
        pipe.execute_command(*command)
    replies: List[Any] = await pipe.execute()
    return replies


async def _scan_async(
    client: AsyncClient, keys: Keys, request: ScanPage
) -> Tuple[Cursor, List[str]]:
    """One ``SCAN`` page of index keys: the cursor after it and the keys."""
    cursor, options = scan_call(client, keys, request)
    return scan_page(request.cursor, await client.scan(cursor, **options))


class AsyncRedisStore(RedisStoreMethods):
    """The asynchronous twin of :class:`RedisStore`, over ``redis.asyncio`` clients.

    An asyncio client belongs to the event loop it first ran in. ``client`` is either such a
    client (``redis.asyncio.Redis``, ``redis.asyncio.cluster.RedisCluster``, a Sentinel
    ``master_for(...)`` client), used as it is, or a callable with no arguments that builds
    one: the store then calls it lazily, inside the running loop, once per event loop, so the
    store may be created at import time and used from several loops (a test client per test,
    several servers in one process). :meth:`from_url` does the latter. Anything else is a
    :class:`~wxmiddleware.errors.ConfigError`.

    The keys, values and commands are those of :class:`RedisStore`: a WSGI app and an ASGI
    app on one Redis read each other's sessions.
    """

    #: Which runner this store is (:mod:`wxmiddleware.stores._operations`).
    asynchronous: Literal[True] = True

    def __init__(
        self,
        client: Union[AsyncClient, Callable[[], AsyncClient]],
        *,
        key_prefix: str = "wx:",
    ) -> None:
        if not isinstance(client, _ASYNC_CLIENTS) and not callable(client):
            raise ConfigError(
                "AsyncRedisStore takes a redis.asyncio client or a callable that builds one"
            )
        self._source = client
        self._keys = Keys(key_prefix)
        self._per_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, Tuple[AsyncClient, RedisOperations]
        ] = weakref.WeakKeyDictionary()
        self._given: Optional[Tuple[AsyncClient, RedisOperations]] = None
        if isinstance(client, _ASYNC_CLIENTS):
            self._given = (client, RedisOperations(self._keys, _is_cluster(client)))
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, key_prefix: str = "wx:", **options: Any) -> AsyncRedisStore:
        """A store that builds a ``redis.asyncio.Redis`` client per event loop from ``url``.

        Nothing connects, and no client exists, until the first call in a running loop.
        ``options`` are as for :meth:`RedisStore.from_url`.
        """
        _check_url(url)
        merged = {**request_path_options(AsyncRetry), **options}
        return cls(
            functools.partial(redis.asyncio.Redis.from_url, url, **merged), key_prefix=key_prefix
        )

    def __repr__(self) -> str:
        return f"AsyncRedisStore(key_prefix={self._keys.prefix!r})"

    def _current(self) -> Tuple[AsyncClient, RedisOperations]:
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        current = self._per_loop.get(loop)
        if current is None:
            with self._lock:
                current = self._per_loop.get(loop)
                if current is None:
                    client = self._source()  # type: ignore[operator]
                    current = (client, RedisOperations(self._keys, _is_cluster(client)))
                    self._per_loop[loop] = current
        return current

    async def _run(self, start: Callable[..., Operation[_T]], *args: Any, **kwargs: Any) -> _T:
        client, operations = self._current()
        steps = Steps(start(operations, *args, **kwargs))
        for request in steps:
            with steps.answering():
                reply = (
                    _send_async(client, request)
                    if isinstance(request, Batch)
                    else _scan_async(client, operations.keys, request)
                )
                steps.reply = await reply
        return steps.result

    async def aclose(self) -> None:
        """Close the client made for the running loop; a later call makes a new one.

        A client passed in stays yours to close.
        """
        current = self._per_loop.pop(asyncio.get_running_loop(), None)
        if current is not None:
            await current[0].aclose()
