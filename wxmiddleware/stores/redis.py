"""RedisStore and AsyncRedisStore: sessions shared by many processes and machines.

Install with ``pip install "wxmiddleware[redis]"``; this module is the only one that imports
redis-py. Both stores work over a client you build (``redis.Redis``, ``redis.cluster.RedisCluster``,
a Sentinel ``master_for(...)`` client, or their ``redis.asyncio`` twins), or over one that
``from_url`` builds with timeouts fit for a web request (see :func:`request_path_options`).
Redis 6.2 or newer is needed (``GETEX``, ``GETDEL``).

Key layout (``key_prefix`` defaults to ``wx:``; every hash is sha256 in hex)::

    wx:s:<sha256(token)>    string      the session, WxSession.to_json(); TTL: the idle
                                        timeout, capped at the absolute expiry
    wx:o:<sha256(openid)>   sorted set  sha256(token) of each session of the openid, scored
                                        by its absolute expiry; TTL: the latest of them
    wx:c:<code_key>         string      a login code's record: "p:<nonce>" while a login owns
                                        it, then the token sealed under the code; TTL: code_ttl
    wx:v:<name>             string      a shared value (set_value); TTL: the one given
    wx:l:<name>             string      a lock's owner token (acquire_lock); TTL: the one given

No key or value holds a token in clear. An authenticated request costs one command,
``GETEX wx:s:<hash> EX <idle_ttl>``, which returns the session and slides its idle timeout;
only in the last ``idle_ttl`` seconds of a session's absolute lifetime does a second command
(``PEXPIRE``) cap the key's TTL at that expiry. The absolute expiry is in the value and is
checked on every read.

Why no hash tags: ``get`` knows only the token, ``revoke_all`` only the openid and
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
sessions that went idle in their openid's index; :meth:`RedisStore.purge_expired` walks the
indexes with ``SCAN`` and removes those.

Every redis-py error becomes :class:`~wxmiddleware.errors.StoreUnavailable` (a 503: the
middleware fails closed) with a generic client message; its ``detail``, for the log, names the
cause and a session only by a short hash. A client recovers by itself when Redis returns.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import re
import secrets
import threading
import time
import weakref
from contextlib import contextmanager
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
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
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ..errors import ConfigError, StoreUnavailable
from ..session import WxSession, short_hash, token_key
from .base import PENDING, PURGE_BATCH, PurgeProgress, SessionInfo, new_lock_owner

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

# One command, a tuple of its words as redis-py's execute_command takes them.
Command = Tuple[Union[str, int, float], ...]

# Marks a code record that a login still owns (_RELEASE_SCRIPT spells it out too). Sealed
# tokens are URL-safe base64, which has no ":".
_PENDING_PREFIX = "p:"
# Adds a session to its openid's index, drops entries past their absolute expiry, and keeps
# the index alive as long as its longest-lived session. The TTL goes out through %d, so that
# PEXPIRE gets an integer however this Redis version prints Lua numbers.
_INDEX_SCRIPT = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  local ttl = math.ceil((tonumber(last[2]) - tonumber(ARGV[3])) * 1000)
  redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl))
end
return 0
"""
# Deletes a code record only while a login still owns it (never a completed one).
_RELEASE_SCRIPT = """
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, 2) == 'p:' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# Deletes a lock only for the owner that holds it.
_RELEASE_LOCK_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_REDIS_ERRORS = (RedisError, RedisClusterException, OSError)
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")
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


# --- key layout, serialisation and decisions, shared by both stores ---


class _Keys:
    """Where each record lives (see the module docstring)."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        if not isinstance(prefix, str):
            raise ConfigError(f"key_prefix must be a string, got {prefix!r}")
        self.prefix = prefix

    def session(self, hashed_token: str) -> str:
        return f"{self.prefix}s:{hashed_token}"

    def index(self, openid: str) -> str:
        return f"{self.prefix}o:{hashlib.sha256(openid.encode('utf-8')).hexdigest()}"

    def code(self, code_key: str) -> str:
        return f"{self.prefix}c:{code_key}"

    def value(self, name: str) -> str:
        return f"{self.prefix}v:{name}"

    def lock(self, name: str) -> str:
        return f"{self.prefix}l:{name}"

    def index_pattern(self) -> str:
        """The ``SCAN MATCH`` pattern of every index key (the prefix's glob characters escaped)."""
        return _GLOB_SPECIAL.sub(r"\\\1", self.prefix) + "o:*"


def _text(value: Union[bytes, str]) -> str:
    # A client may or may not have decode_responses set.
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _execute(client: Any, command: Command) -> Any:
    # One command, outside a pipeline. redis-py's execute_command is untyped, and so is its
    # reply (which depends on the command); for an asyncio client this is a coroutine.
    return client.execute_command(*command)


def _is_cluster(client: Any) -> bool:
    return isinstance(client, (RedisCluster, AsyncRedisCluster))


def _session_ttl_ms(session: WxSession, idle_ttl: int, now: float) -> int:
    """Milliseconds a session key should live: its idle timeout, capped at its expiry."""
    return min(idle_ttl * 1000, math.ceil((session.expires_at - now) * 1000))


def _get_command(keys: _Keys, hashed_token: str, idle_ttl: int) -> Command:
    return ("GETEX", keys.session(hashed_token), "EX", idle_ttl)


def _read_session(
    keys: _Keys, hashed_token: str, raw: Any, idle_ttl: int, now: float
) -> Tuple[Optional[WxSession], Optional[Command]]:
    """The live session in a ``GETEX`` answer, and the ``PEXPIRE`` that caps its TTL, if due.

    ``GETEX`` has just set the key's TTL to ``idle_ttl``; when the absolute expiry is nearer,
    the cap brings it back (a cap of zero or less deletes a session that is already over).
    """
    if raw is None:
        return None, None
    try:
        session = WxSession.from_json(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreUnavailable(
            detail=f"Redis: undecodable session {short_hash(hashed_token)}: {type(exc).__name__}"
        ) from None
    left_ms = _session_ttl_ms(session, idle_ttl, now)
    cap = None if left_ms >= idle_ttl * 1000 else ("PEXPIRE", keys.session(hashed_token), left_ms)
    return (session if left_ms > 0 else None), cap


def _index_command(keys: _Keys, hashed_token: str, session: WxSession, now: float) -> Command:
    return (
        "EVAL",
        _INDEX_SCRIPT,
        1,
        keys.index(session.openid),
        hashed_token,
        repr(session.expires_at),
        repr(now),
    )


def _save_commands(
    keys: _Keys,
    hashed_token: str,
    session: WxSession,
    idle_ttl: int,
    code_key: Optional[str],
    sealed_token: Optional[str],
    now: float,
) -> List[Command]:
    """The session and, when a claim is being completed, its code record (TTL kept)."""
    # At least 1 ms: a session already past its expiry is written to vanish at once.
    ttl_ms = max(1, _session_ttl_ms(session, idle_ttl, now))
    commands: List[Command] = [("SET", keys.session(hashed_token), session.to_json(), "PX", ttl_ms)]
    if code_key is not None and sealed_token is not None:
        commands.append(("SET", keys.code(code_key), sealed_token, "XX", "KEEPTTL"))
    return commands


def _save_batches(
    cluster: bool,
    keys: _Keys,
    token: str,
    session: WxSession,
    idle_ttl: int,
    code_key: Optional[str],
    sealed_token: Optional[str],
) -> List[List[Command]]:
    """The round trips of a login's writes: one transaction, or two steps on a Cluster."""
    hashed = token_key(token)
    now = time.time()
    index = _index_command(keys, hashed, session, now)
    rest = _save_commands(keys, hashed, session, idle_ttl, code_key, sealed_token, now)
    return [[index], rest] if cluster else [[index, *rest]]


def _claim_commands(keys: _Keys, code_key: str, marker: str, ttl: int) -> List[Command]:
    # Whoever finds its own marker owns the code. Comparing markers (instead of trusting
    # SET's reply) keeps a retried SET NX from locking its sender out of its own claim.
    key = keys.code(code_key)
    return [("SET", key, marker, "NX", "EX", ttl), ("GET", key)]


def _claim_result(results: Sequence[Any], marker: str) -> Optional[str]:
    raw = results[-1]
    if raw is None:  # released or expired between the two commands: look again
        return PENDING
    value = _text(raw)
    if value == marker:
        return None
    return PENDING if value.startswith(_PENDING_PREFIX) else value


def _release_command(keys: _Keys, code_key: str) -> Command:
    return ("EVAL", _RELEASE_SCRIPT, 1, keys.code(code_key))


def _unindex_command(keys: _Keys, hashed_token: str, raw: Any) -> Optional[Command]:
    """After ``GETDEL`` of a session: remove it from its openid's index."""
    if raw is None:
        return None
    try:
        openid = WxSession.from_json(raw).openid
    except (ValueError, KeyError, TypeError):
        return None  # not ours to index; the session key is gone either way
    return ("ZREM", keys.index(openid), hashed_token)


def _members(raw: Sequence[Union[bytes, str]]) -> List[str]:
    return [_text(member) for member in raw]


def _revoke_commands(keys: _Keys, openid: str, members: Sequence[str]) -> List[Command]:
    # Removes only the entries read, so that a session saved meanwhile stays indexed.
    commands: List[Command] = [("DEL", keys.session(member)) for member in members]
    commands.append(("ZREM", keys.index(openid), *members))
    return commands


def _describe_commands(keys: _Keys, members: Sequence[str]) -> List[Command]:
    commands: List[Command] = []
    for member in members:
        commands += [("GET", keys.session(member)), ("PTTL", keys.session(member))]
    return commands


def _describe(
    members: Sequence[str], results: Sequence[Any], now: float
) -> Tuple[List[SessionInfo], List[str]]:
    """``SessionInfo`` of the live sessions, oldest first, and the index entries gone stale."""
    infos: List[SessionInfo] = []
    stale: List[str] = []
    for member, raw, pttl in zip(members, results[0::2], results[1::2]):
        if raw is None:
            stale.append(member)
            continue
        try:
            session = WxSession.from_json(raw)
        except (ValueError, KeyError, TypeError):
            continue
        if session.expires_at <= now or pttl <= 0:
            continue
        infos.append(
            SessionInfo(
                key_hash=short_hash(member),
                openid=session.openid,
                unionid=session.unionid,
                created_at=session.created_at,
                expires_at=session.expires_at,
                idle_until=now + pttl / 1000,
            )
        )
    infos.sort(key=lambda info: info.created_at)
    return infos, stale


def _ttl_ms(ttl: float) -> int:
    # PX takes whole, positive milliseconds.
    return max(1, math.ceil(ttl * 1000))


def _lock_commands(keys: _Keys, name: str, owner: str, ttl: float) -> List[Command]:
    # As with _claim_commands: whoever finds its own owner token holds the lock.
    key = keys.lock(name)
    return [("SET", key, owner, "NX", "PX", _ttl_ms(ttl)), ("GET", key)]


def _lock_result(results: Sequence[Any], owner: str) -> Optional[str]:
    raw = results[-1]
    return owner if raw is not None and _text(raw) == owner else None


def _release_lock_command(keys: _Keys, name: str, owner: str) -> Command:
    return ("EVAL", _RELEASE_LOCK_SCRIPT, 1, keys.lock(name), owner)


def _named_session(members: Sequence[str], key_hash: str) -> List[str]:
    """The index entries that :attr:`SessionInfo.key_hash` ``key_hash`` names."""
    return [member for member in members if short_hash(member) == key_hash]


def _chunks(items: Iterable[_T], size: int) -> Iterator[List[_T]]:
    chunk: List[_T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _async_chunks(items: AsyncIterator[_T], size: int) -> AsyncIterator[List[_T]]:
    chunk: List[_T] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _liveness_commands(keys: _Keys, memberships: Sequence[List[str]]) -> List[Command]:
    """``EXISTS`` for the session of every index entry, index by index."""
    return [("EXISTS", keys.session(member)) for members in memberships for member in members]


def _unindex_gone_commands(
    indexes: Sequence[str], memberships: Sequence[List[str]], exists: Sequence[Any]
) -> List[Command]:
    """``ZREM`` of each index's entries whose session Redis has expired.

    A removed entry cannot come back meanwhile: a new session has a new token, so a new hash.
    """
    answers = iter(exists)
    commands: List[Command] = []
    for index, members in zip(indexes, memberships):
        gone = [member for member in members if not next(answers)]
        if gone:
            commands.append(("ZREM", index, *gone))
    return commands


@contextmanager
def _failures(action: str, kind: str = "", key: str = "") -> Iterator[None]:
    """Turn every redis-py error into :class:`StoreUnavailable` (the middleware's 503)."""
    try:
        yield
    except _REDIS_ERRORS as exc:
        subject = f" for {kind} {short_hash(key)}" if key else ""
        raise StoreUnavailable(detail=f"Redis: {action}{subject}: {_cause(exc)}") from exc


def _cause(exc: BaseException) -> str:
    # Connection and timeout messages come from redis-py and name only the host and port.
    # A server's error message may echo a command's arguments, so only its code is kept.
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return f"{type(exc).__name__}: {exc}"
    code = str(exc).split(" ", 1)[0]
    return f"{type(exc).__name__} ({code})" if code.isupper() else type(exc).__name__


def _new_marker() -> str:
    return _PENDING_PREFIX + secrets.token_hex(8)


# --- the synchronous store ---


def _run(client: SyncClient, commands: Sequence[Command], transaction: bool) -> List[Any]:
    pipe = client.pipeline(transaction=transaction)
    for command in commands:
        pipe.execute_command(*command)
    results: List[Any] = pipe.execute()
    return results


class RedisStore:
    """A :class:`~wxmiddleware.stores.base.SessionStore` in Redis, shared by many machines.

    ``client`` is a ``redis.Redis``, a ``redis.cluster.RedisCluster`` or a Sentinel
    ``master_for(...)`` client; its timeouts and retries are yours to choose (or use
    :meth:`from_url`, which picks request-path ones). redis-py clients are thread-safe and
    reconnect in a child after ``fork()``, so one store may be created at import time.

    .. code-block:: python

        store = RedisStore.from_url("redis://cache:6379/0")
        # or: RedisStore(redis.cluster.RedisCluster(host="node1", port=7000))
        app.wsgi_app = WxMiddleware(app.wsgi_app, config=config, store=store)

    See the module docstring for the key layout and the commands each method sends.
    """

    def __init__(self, client: SyncClient, *, key_prefix: str = "wx:") -> None:
        self._client = client
        self._keys = _Keys(key_prefix)
        self._cluster = _is_cluster(client)
        self._owns_client = False

    @classmethod
    def from_url(cls, url: str, *, key_prefix: str = "wx:", **options: Any) -> RedisStore:
        """A store over a new ``redis.Redis`` client for a ``redis://`` or ``rediss://`` URL.

        ``options`` go to ``redis.Redis.from_url`` and override :func:`request_path_options`;
        options in the URL's query string (``?socket_timeout=1``) override both. The store
        owns this client, so :meth:`close` closes it.
        """
        _check_url(url)
        client = redis.Redis.from_url(url, **{**request_path_options(Retry), **options})
        store = cls(client, key_prefix=key_prefix)
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        return f"RedisStore(key_prefix={self._keys.prefix!r})"

    @property
    def client(self) -> SyncClient:
        """The redis-py client the store talks through."""
        return self._client

    def get(self, token: str, idle_ttl: int) -> Optional[WxSession]:
        """Return the live session for ``token`` and slide its idle timeout, or ``None``.

        One ``GETEX`` (see the module docstring for the rare second command).
        """
        hashed = token_key(token)
        with _failures("get", "session", hashed):
            raw = _execute(self._client, _get_command(self._keys, hashed, idle_ttl))
            session, cap = _read_session(self._keys, hashed, raw, idle_ttl, time.time())
            if cap is not None:
                _execute(self._client, cap)
        return session

    def save(
        self,
        token: str,
        session: WxSession,
        idle_ttl: int,
        code_key: Optional[str] = None,
        sealed_token: Optional[str] = None,
    ) -> None:
        """Store a new session, index it under its openid, and complete a code claim."""
        batches = _save_batches(
            self._cluster, self._keys, token, session, idle_ttl, code_key, sealed_token
        )
        with _failures("save", "session", token_key(token)):
            for batch in batches:
                _run(self._client, batch, transaction=not self._cluster)

    def delete(self, token: str) -> bool:
        """End one session; ``True`` if it existed."""
        hashed = token_key(token)
        with _failures("delete", "session", hashed):
            raw = _execute(self._client, ("GETDEL", self._keys.session(hashed)))
            unindex = _unindex_command(self._keys, hashed, raw)
            if unindex is not None:
                _execute(self._client, unindex)
        return raw is not None

    def revoke_all(self, openid: str) -> int:
        """End every session of ``openid``; return how many ended."""
        with _failures("revoke_all"):
            members = _members(_execute(self._client, ("ZRANGE", self._keys.index(openid), 0, -1)))
            if not members:
                return 0
            results = _run(self._client, _revoke_commands(self._keys, openid, members), False)
        return sum(1 for deleted in results[:-1] if deleted)

    def sessions_for(self, openid: str) -> List[SessionInfo]:
        """Describe the live sessions of ``openid``, oldest first."""
        index = self._keys.index(openid)
        with _failures("sessions_for"):
            members = _members(_execute(self._client, ("ZRANGE", index, 0, -1)))
            if not members:
                return []
            results = _run(self._client, _describe_commands(self._keys, members), False)
            infos, stale = _describe(members, results, time.time())
            if stale:
                _execute(self._client, ("ZREM", index, *stale))
        return infos

    def claim_code(self, code_key: str, ttl: int) -> Optional[str]:
        """Claim a login code for ``ttl`` seconds (``SET NX EX`` and ``GET``, one round trip)."""
        marker = _new_marker()
        with _failures("claim_code", "code", code_key):
            results = _run(self._client, _claim_commands(self._keys, code_key, marker, ttl), False)
        return _claim_result(results, marker)

    def release_code(self, code_key: str) -> None:
        """Delete a still-pending claim (a one-key script), so that a retry may try again."""
        with _failures("release_code", "code", code_key):
            _execute(self._client, _release_command(self._keys, code_key))

    def revoke_session(self, openid: str, key_hash: str) -> bool:
        """End the session of ``openid`` that ``key_hash`` names (found in its index)."""
        with _failures("revoke_session"):
            members = _members(_execute(self._client, ("ZRANGE", self._keys.index(openid), 0, -1)))
            named = _named_session(members, key_hash)
            if not named:
                return False
            results = _run(self._client, _revoke_commands(self._keys, openid, named), False)
        return any(results[:-1])

    def purge_expired(self, progress: Optional[PurgeProgress] = None) -> int:
        """Remove index entries of sessions Redis has expired; return how many went.

        Redis deletes sessions and records itself, by their TTLs, and :meth:`sessions_for`,
        :meth:`revoke_all` and the next login of an openid tidy its index; this walks every
        index with ``SCAN`` (three pipelined round trips per :data:`PURGE_BATCH` indexes)
        for the users who never come back. ``progress`` is called after each batch.
        """
        purged = 0
        with _failures("purge_expired"):
            found = self._client.scan_iter(
                match=self._keys.index_pattern(), count=PURGE_BATCH, _type="zset"
            )
            for chunk in _chunks(found, PURGE_BATCH):
                indexes = [_text(index) for index in chunk]
                ranges = [("ZRANGE", index, 0, -1) for index in indexes]
                memberships = [_members(raw) for raw in _run(self._client, ranges, False)]
                exists = _run(self._client, _liveness_commands(self._keys, memberships), False)
                removals = _unindex_gone_commands(indexes, memberships, exists)
                if removals:
                    purged += sum(_run(self._client, removals, False))
                if progress is not None:
                    progress(purged)
        return purged

    def get_value(self, name: str) -> Optional[str]:
        """The value under ``name`` (``GET``), or ``None``."""
        with _failures(f"get_value {name}"):
            raw = _execute(self._client, ("GET", self._keys.value(name)))
        return None if raw is None else _text(raw)

    def set_value(self, name: str, value: str, ttl: float) -> None:
        """Store ``value`` under ``name`` for ``ttl`` seconds (``SET PX``)."""
        with _failures(f"set_value {name}"):
            _execute(self._client, ("SET", self._keys.value(name), value, "PX", _ttl_ms(ttl)))

    def delete_value(self, name: str) -> bool:
        """Delete the value under ``name`` (``DEL``)."""
        with _failures(f"delete_value {name}"):
            return bool(_execute(self._client, ("DEL", self._keys.value(name))))

    def acquire_lock(self, name: str, ttl: float) -> Optional[str]:
        """Take the lock ``name`` for ``ttl`` seconds: ``SET NX PX`` and ``GET``, one round trip."""
        owner = new_lock_owner()
        with _failures(f"acquire_lock {name}"):
            results = _run(self._client, _lock_commands(self._keys, name, owner, ttl), False)
        return _lock_result(results, owner)

    def release_lock(self, name: str, owner: str) -> bool:
        """Release the lock ``name`` if ``owner`` holds it (a compare-and-delete script)."""
        with _failures(f"release_lock {name}"):
            return bool(_execute(self._client, _release_lock_command(self._keys, name, owner)))

    def close(self) -> None:
        """Close the client if :meth:`from_url` made it; a client passed in stays yours."""
        if self._owns_client:
            self._client.close()


# --- the asynchronous store ---


async def _run_async(
    client: AsyncClient, commands: Sequence[Command], transaction: bool
) -> List[Any]:
    pipe = client.pipeline(transaction=transaction)
    for command in commands:
        pipe.execute_command(*command)
    results: List[Any] = await pipe.execute()
    return results


class AsyncRedisStore:
    """The asynchronous twin of :class:`RedisStore`, over ``redis.asyncio`` clients.

    An asyncio client belongs to the event loop it first ran in. ``client`` is either such a
    client (``redis.asyncio.Redis``, ``redis.asyncio.cluster.RedisCluster``, a Sentinel
    ``master_for(...)`` client), used as it is, or a callable with no arguments that builds
    one: the store then calls it lazily, inside the running loop, once per event loop, so the
    store may be created at import time and used from several loops (a test client per test,
    several servers in one process). :meth:`from_url` does the latter.

    The keys, values and commands are those of :class:`RedisStore`: a WSGI app and an ASGI
    app on one Redis read each other's sessions.
    """

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
        self._keys = _Keys(key_prefix)
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
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

    def _current(self) -> AsyncClient:
        source = self._source
        if isinstance(source, _ASYNC_CLIENTS):
            return source
        loop = asyncio.get_running_loop()
        client = self._per_loop.get(loop)
        if client is None:
            with self._lock:
                client = self._per_loop.setdefault(loop, source())
        return client

    async def get(self, token: str, idle_ttl: int) -> Optional[WxSession]:
        """See :meth:`RedisStore.get`."""
        hashed = token_key(token)
        with _failures("get", "session", hashed):
            client = self._current()
            raw = await _execute(client, _get_command(self._keys, hashed, idle_ttl))
            session, cap = _read_session(self._keys, hashed, raw, idle_ttl, time.time())
            if cap is not None:
                await _execute(client, cap)
        return session

    async def save(
        self,
        token: str,
        session: WxSession,
        idle_ttl: int,
        code_key: Optional[str] = None,
        sealed_token: Optional[str] = None,
    ) -> None:
        """See :meth:`RedisStore.save`."""
        with _failures("save", "session", token_key(token)):
            client = self._current()
            cluster = _is_cluster(client)
            batches = _save_batches(
                cluster, self._keys, token, session, idle_ttl, code_key, sealed_token
            )
            for batch in batches:
                await _run_async(client, batch, transaction=not cluster)

    async def delete(self, token: str) -> bool:
        """See :meth:`RedisStore.delete`."""
        hashed = token_key(token)
        with _failures("delete", "session", hashed):
            client = self._current()
            raw = await _execute(client, ("GETDEL", self._keys.session(hashed)))
            unindex = _unindex_command(self._keys, hashed, raw)
            if unindex is not None:
                await _execute(client, unindex)
        return raw is not None

    async def revoke_all(self, openid: str) -> int:
        """See :meth:`RedisStore.revoke_all`."""
        with _failures("revoke_all"):
            client = self._current()
            members = _members(await _execute(client, ("ZRANGE", self._keys.index(openid), 0, -1)))
            if not members:
                return 0
            results = await _run_async(client, _revoke_commands(self._keys, openid, members), False)
        return sum(1 for deleted in results[:-1] if deleted)

    async def sessions_for(self, openid: str) -> List[SessionInfo]:
        """See :meth:`RedisStore.sessions_for`."""
        index = self._keys.index(openid)
        with _failures("sessions_for"):
            client = self._current()
            members = _members(await _execute(client, ("ZRANGE", index, 0, -1)))
            if not members:
                return []
            results = await _run_async(client, _describe_commands(self._keys, members), False)
            infos, stale = _describe(members, results, time.time())
            if stale:
                await _execute(client, ("ZREM", index, *stale))
        return infos

    async def claim_code(self, code_key: str, ttl: int) -> Optional[str]:
        """See :meth:`RedisStore.claim_code`."""
        marker = _new_marker()
        with _failures("claim_code", "code", code_key):
            commands = _claim_commands(self._keys, code_key, marker, ttl)
            results = await _run_async(self._current(), commands, False)
        return _claim_result(results, marker)

    async def release_code(self, code_key: str) -> None:
        """See :meth:`RedisStore.release_code`."""
        with _failures("release_code", "code", code_key):
            await _execute(self._current(), _release_command(self._keys, code_key))

    async def revoke_session(self, openid: str, key_hash: str) -> bool:
        """See :meth:`RedisStore.revoke_session`."""
        with _failures("revoke_session"):
            client = self._current()
            members = _members(await _execute(client, ("ZRANGE", self._keys.index(openid), 0, -1)))
            named = _named_session(members, key_hash)
            if not named:
                return False
            results = await _run_async(client, _revoke_commands(self._keys, openid, named), False)
        return any(results[:-1])

    async def purge_expired(self, progress: Optional[PurgeProgress] = None) -> int:
        """See :meth:`RedisStore.purge_expired`."""
        purged = 0
        with _failures("purge_expired"):
            client = self._current()
            found = client.scan_iter(
                match=self._keys.index_pattern(), count=PURGE_BATCH, _type="zset"
            )
            async for chunk in _async_chunks(found, PURGE_BATCH):
                indexes = [_text(index) for index in chunk]
                ranges = [("ZRANGE", index, 0, -1) for index in indexes]
                memberships = [_members(raw) for raw in await _run_async(client, ranges, False)]
                liveness = _liveness_commands(self._keys, memberships)
                exists = await _run_async(client, liveness, False)
                removals = _unindex_gone_commands(indexes, memberships, exists)
                if removals:
                    purged += sum(await _run_async(client, removals, False))
                if progress is not None:
                    progress(purged)
        return purged

    async def get_value(self, name: str) -> Optional[str]:
        """See :meth:`RedisStore.get_value`."""
        with _failures(f"get_value {name}"):
            raw = await _execute(self._current(), ("GET", self._keys.value(name)))
        return None if raw is None else _text(raw)

    async def set_value(self, name: str, value: str, ttl: float) -> None:
        """See :meth:`RedisStore.set_value`."""
        command = ("SET", self._keys.value(name), value, "PX", _ttl_ms(ttl))
        with _failures(f"set_value {name}"):
            await _execute(self._current(), command)

    async def delete_value(self, name: str) -> bool:
        """See :meth:`RedisStore.delete_value`."""
        with _failures(f"delete_value {name}"):
            return bool(await _execute(self._current(), ("DEL", self._keys.value(name))))

    async def acquire_lock(self, name: str, ttl: float) -> Optional[str]:
        """See :meth:`RedisStore.acquire_lock`."""
        owner = new_lock_owner()
        with _failures(f"acquire_lock {name}"):
            commands = _lock_commands(self._keys, name, owner, ttl)
            results = await _run_async(self._current(), commands, False)
        return _lock_result(results, owner)

    async def release_lock(self, name: str, owner: str) -> bool:
        """See :meth:`RedisStore.release_lock`."""
        command = _release_lock_command(self._keys, name, owner)
        with _failures(f"release_lock {name}"):
            return bool(await _execute(self._current(), command))

    async def close(self) -> None:
        """Close the client made for the running loop; a later call makes a new one.

        A client passed in stays yours to close.
        """
        client = self._per_loop.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
