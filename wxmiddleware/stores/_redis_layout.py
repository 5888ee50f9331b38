"""What the Redis stores keep where, and the commands and scripts they send.

See :mod:`wxmiddleware.stores.redis` for the key layout, and
:mod:`wxmiddleware.stores._redis_ops` for the operations that send these.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from contextlib import contextmanager
from typing import (
    Any,
    Dict,
    Generator,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import ConfigError, StoreUnavailable
from ..session import (
    CLAIM_OWNER,
    CLAIM_PENDING,
    CodeClaim,
    SessionScope,
    WxSession,
    claim_used,
    short_hash,
)
from . import _records
from .base import SessionInfo

_T = TypeVar("_T")

#: One command, a tuple of its words as redis-py's ``execute_command`` takes them.
Command = Tuple[Union[str, int, float], ...]


class Batch(NamedTuple):
    """Commands sent in one round trip; the operation receives the list of their replies.

    With ``transaction``, wrapped in ``MULTI``/``EXEC``; one command alone is sent as it is.
    """

    commands: Sequence[Command]
    transaction: bool = False


#: Where a walk of the index keys stands: ``None`` before the first page and after the
#: last; else a single Redis's cursor, or a Cluster's cursor of each master not yet done.
Cursor = Union[None, int, Dict[str, int]]


class ScanPage(NamedTuple):
    """The request for one ``SCAN`` page of index keys, from ``cursor``, looking at about
    ``scan_count`` keys (of every kind); the operation receives ``(the cursor after it, the
    keys found)``. A runner sends it with :func:`scan_call` and reads the reply with
    :func:`scan_page`.
    """

    cursor: Cursor
    scan_count: int


#: What an operation yields, receives and returns.
Operation = Generator[Union[Batch, ScanPage], Any, _T]

#: A store runs one bounded step of ``purge_expired`` (one ``SCAN`` page of ``COUNT``
#: :data:`STEP_COUNT`, then the pruning of the indexes it found) every this many saves, so
#: that the index keys of users who never come back go without a cron job: a walk of the
#: whole keyspace takes about ``keys / STEP_COUNT`` steps, each a millisecond or two of the
#: save that takes it, whatever the size of the store.
MAINTENANCE_EVERY = 20
STEP_COUNT = 100

#: The exceptions of a redis-py client that mean the store is unavailable.
REDIS_ERRORS = (RedisError, RedisClusterException, OSError)

# Marks a code record that a login still owns (RELEASE_SCRIPT spells it out too). Sealed
# tokens are URL-safe base64, which has no ":".
PENDING_PREFIX = "p:"
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
RELEASE_SCRIPT = """
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, 2) == 'p:' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# The start of the one-key scripts that work on one session of an app: they read the record
# (0 when there is none) and answer 3 unless it is a record of the app whose appid member
# (_records.appid_member) the script put in `app`. The record's head is _records.HEAD; `at`
# and `sealed` are its key's issue time and the sealed key.
_APP_RECORD = """
local value = redis.call('GET', KEYS[1])
if not value then
  return 0
end
local _, last, at, sealed = string.find(value, '^{"kt":([^,]+),"sk":"([^"]*)",')
if not last or string.sub(value, last + 1, last + #app) ~= app then
  return 3
end
"""
# Puts a sealed session_key (ARGV[1], issued at ARGV[2]) into one session record of the app
# ARGV[3], keeping its TTL, unless the record holds a newer key: session.key_replaces,
# applied where Redis can do it atomically. Answers 0: no such session; 1: rewritten; 2: it
# holds this key or a newer one; 3: not a record of this app.
REKEY_SCRIPT = (
    "local app = ARGV[3]"
    + _APP_RECORD
    + """if sealed == ARGV[1] or tonumber(at) > tonumber(ARGV[2]) then
  return 2
end
local record = '{"kt":' .. ARGV[2] .. ',"sk":"' .. ARGV[1] .. '",' .. string.sub(value, last + 1)
redis.call('SET', KEYS[1], record, 'KEEPTTL')
return 1
"""
)
#: What :data:`REKEY_SCRIPT` answers for a session that is still there, of this app.
REKEY_LIVE = (1, 2)
#: ... and for one that is gone (:data:`REVOKE_SCRIPT` too).
REKEY_GONE = 0
# Deletes one session record if it is of the app ARGV[1]. Answers 0: no such session; 1:
# deleted; 3: not a record of this app.
REVOKE_SCRIPT = "local app = ARGV[1]" + _APP_RECORD + "return redis.call('DEL', KEYS[1])\n"
#: What :data:`REVOKE_SCRIPT` answers for a session it deleted.
REVOKED = 1
# Deletes a lock only for the owner that holds it.
RELEASE_LOCK_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


def token_id(hashed_token: str) -> str:
    """The compact name of a session in keys and index entries: its token's SHA-256 digest
    (``hashed_token``, 64 hex digits) in unpadded URL-safe base64, 43 characters. A third
    shorter than hex in the session's key and in its index entry, it keeps a session within
    the store's memory budget (``benchmarks/scale.py`` measures bytes per session)."""
    return base64.urlsafe_b64encode(bytes.fromhex(hashed_token)).rstrip(b"=").decode("ascii")


def hashed_of(member: str) -> str:
    """The token digest (hex) that :func:`token_id` made ``member`` of."""
    return base64.urlsafe_b64decode(member + "=").hex()


class Keys:
    """Where each record lives (see :mod:`wxmiddleware.stores.redis`)."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        if not isinstance(prefix, str):
            raise ConfigError(f"key_prefix must be a string, got {prefix!r}")
        self.prefix = prefix

    def session(self, member: str) -> str:
        """The key of the session whose :func:`token_id` is ``member``."""
        return f"{self.prefix}s:{member}"

    def index(self, openid: str) -> str:
        """The key of ``openid``'s index: 128 bits of its SHA-256 digest, in base64url (22
        characters). Two openids would share an index only by a collision of 128 bits; the
        short name keeps a one-session user's index in a smaller allocation."""
        digest = hashlib.sha256(openid.encode("utf-8")).digest()[:16]
        return f"{self.prefix}o:{base64.urlsafe_b64encode(digest).rstrip(b'=').decode('ascii')}"

    def code(self, code_key: str) -> str:
        return f"{self.prefix}c:{code_key}"

    def value(self, name: str) -> str:
        return f"{self.prefix}v:{name}"

    def lock(self, name: str) -> str:
        return f"{self.prefix}l:{name}"

    def index_pattern(self) -> str:
        """The ``SCAN MATCH`` pattern of every index key (the prefix's glob characters escaped)."""
        return _GLOB_SPECIAL.sub(r"\\\1", self.prefix) + "o:*"


def scan_call(client: Any, keys: Keys, request: ScanPage) -> Tuple[int, Dict[str, Any]]:
    """The cursor and keyword arguments of the redis-py ``client.scan`` call that fetches
    the page of index keys ``request`` asks for: on a Cluster, the
    first page of every master at once, then the next page of the first master not yet done
    (as redis-py's ``scan_iter`` walks a Cluster), or from the start again if that master
    is gone."""
    cursor = request.cursor
    options: Dict[str, Any] = {"match": keys.index_pattern(), "count": request.scan_count}
    options["_type"] = "zset"
    if not isinstance(cursor, dict):
        return cursor or 0, options
    name, at = next(iter(cursor.items()))
    node = client.get_node(node_name=name)
    return (0, options) if node is None else (at, {**options, "target_nodes": node})


def scan_page(cursor: Cursor, reply: Tuple[Any, List[Any]]) -> Tuple[Cursor, List[str]]:
    """The cursor after a page and its keys, from the reply to :func:`scan_call`'s ``scan``:
    ``(cursor, keys)`` from a single Redis, ``({master: cursor}, keys)`` from a Cluster."""
    after, found = reply
    if isinstance(after, dict):
        # One master answered: the others keep their place; every master: a (new) start.
        resumed = isinstance(cursor, dict) and next(iter(cursor)) in after
        merged = {**cursor, **after} if resumed and isinstance(cursor, dict) else after
        after = {name: at for name, at in merged.items() if at}
    return after or None, [text(key) for key in found]


def claim_commands(keys: Keys, code_key: str, marker: str, ttl: int) -> List[Command]:
    """``SET NX EX`` of ``marker`` and ``GET``: whoever finds its own marker owns the code.

    Comparing markers (instead of trusting SET's reply) keeps a retried ``SET NX`` from
    locking its sender out of its own claim.
    """
    key = keys.code(code_key)
    return [("SET", key, marker, "NX", "EX", ttl), ("GET", key)]


def claim_result(results: Sequence[Any], marker: str) -> CodeClaim:
    """The claim that the replies of :func:`claim_commands` with ``marker`` mean."""
    raw = results[-1]
    if raw is None:  # released or expired between the two commands: look again
        return CLAIM_PENDING
    value = text(raw)
    if value == marker:
        return CLAIM_OWNER
    return CLAIM_PENDING if value.startswith(PENDING_PREFIX) else claim_used(value)


def lock_commands(keys: Keys, name: str, owner: str, ttl: float) -> List[Command]:
    """``SET NX PX`` and ``GET``: as with :func:`claim_commands`, whoever finds its own
    ``owner`` token holds the lock."""
    key = keys.lock(name)
    return [("SET", key, owner, "NX", "PX", ttl_ms(ttl)), ("GET", key)]


def lock_result(results: Sequence[Any], owner: str) -> Optional[str]:
    """``owner`` if the replies of :func:`lock_commands` say it holds the lock, else ``None``."""
    raw = results[-1]
    return owner if raw is not None and text(raw) == owner else None


def text(value: Union[bytes, str]) -> str:
    # A client may or may not have decode_responses set.
    return value.decode("utf-8") if isinstance(value, bytes) else value


def ttl_ms(ttl: float) -> int:
    # PX takes whole, positive milliseconds.
    return max(1, math.ceil(ttl * 1000))


def parse_session(
    raw: Union[bytes, str], hashed_token: str, scope: SessionScope
) -> Optional[WxSession]:
    """The session a stored record holds for ``scope``'s app (``None``: not one of its
    sessions); :class:`StoreUnavailable` for a value that is not a record at all."""
    try:
        return _records.decode(raw, scope)
    except ValueError as exc:
        raise StoreUnavailable(
            detail=f"Redis: undecodable session {short_hash(hashed_token)}: {type(exc).__name__}"
        ) from None


def index_command(index: str, member: str, session: WxSession, now: float) -> Command:
    return ("EVAL", _INDEX_SCRIPT, 1, index, member, repr(session.expires_at), repr(now))


def score_pairs(reply: Sequence[Any]) -> List[Tuple[str, float]]:
    """``ZRANGE … WITHSCORES`` as (member, score) pairs: a flat list in RESP2, pairs in
    RESP3."""
    if reply and isinstance(reply[0], (list, tuple)):
        return [(text(member), float(score)) for member, score in reply]
    return [(text(member), float(score)) for member, score in zip(reply[0::2], reply[1::2])]


def describe(
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
            session = _records.public_fields(raw)
        except (ValueError, KeyError, TypeError):
            continue
        if session.expires_at <= now or pttl <= 0:
            continue
        infos.append(
            SessionInfo(
                key_hash=short_hash(hashed_of(member)),
                openid=session.openid,
                unionid=session.unionid,
                created_at=session.created_at,
                expires_at=session.expires_at,
                idle_until=now + pttl / 1000,
                appid=session.appid,
            )
        )
    infos.sort(key=lambda info: info.created_at)
    return infos, stale


@contextmanager
def failures(action: str, kind: str = "", key: str = "") -> Iterator[None]:
    """Turn every redis-py error into :class:`StoreUnavailable` (the middleware's 503)."""
    try:
        yield
    except REDIS_ERRORS as exc:
        subject = f" for {kind} {short_hash(key)}" if key else ""
        raise StoreUnavailable(detail=f"Redis: {action}{subject}: {cause(exc)}") from exc


def cause(exc: BaseException) -> str:
    # Connection and timeout messages come from redis-py and name only the host and port.
    # A server's error message may echo a command's arguments, so only its code is kept.
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return f"{type(exc).__name__}: {exc}"
    code = str(exc).split(" ", 1)[0]
    return f"{type(exc).__name__} ({code})" if code.isupper() else type(exc).__name__
