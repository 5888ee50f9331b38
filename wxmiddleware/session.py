"""The session record, its lifetime, its tokens, and the sealed record that makes login
idempotent.

Nothing here does I/O. Persistent stores key sessions by :func:`token_key` so that a dump of
the store holds no usable token, and remember a login code only as :func:`code_key` plus the
token sealed under a key derived from the code (:func:`seal_token`): only a holder of the code
can get the token back.

A session belongs to one app (:attr:`WxSession.appid`): a store reads it only for a
:class:`SessionScope` of that app, which also carries the keys that seal session_keys at
rest and the cap of sessions per user. WeChat keeps one valid session_key per user of an
app, so every store keeps that one key in all of the user's live sessions: a login or a
reset writes its key into all of them unless a newer one is already there
(:func:`key_replaces`), and a login beyond the cap ends the oldest (:func:`over_cap`).

A session's lifetime is decided here, once, for every store: it ends at its absolute expiry
(:func:`absolute_expiry`) or when it has not been used for ``idle_ttl`` seconds, whichever
comes first (:func:`is_live`); each use moves the idle deadline (:func:`idle_deadline`), and
a store writes that move only when it is larger than a slide granularity
(:func:`deadline_after_use`). Stores only persist the deadlines and expire what is past them.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple, TypeVar

from ._sealing import Sealer, sealing_materials

if TYPE_CHECKING:
    from .config import WxConfig

_T = TypeVar("_T")

TOKEN_BYTES = 32
# token_urlsafe(32) gives 43 characters; anything far longer is not one of ours.
MAX_TOKEN_LENGTH = 128
#: Seconds: the most a stored idle deadline may lag behind the last use (see
#: :func:`deadline_after_use`).
MAX_SLIDE_GRANULARITY = 60.0
#: How many live sessions a user of an app may have unless configured otherwise
#: (``max_sessions_per_user``): a login beyond it ends the oldest.
DEFAULT_MAX_SESSIONS = 5


@dataclass(frozen=True)
class WxSession:
    """One logged-in mini-program user of the app ``appid`` on ``platform``.

    ``session_key`` never leaves the server; it is the platform's current key for the user
    when the session was read (a later login or reset replaces it in every session of the
    user), or ``""`` on a platform without one (Alipay). ``openid`` is the platform's user
    id in the app (Alipay's ``open_id``, else its ``user_id``). ``platform`` is the app's
    (``"wechat"``, ``"qq"``, ``"douyin"``, ``"baidu"``, ``"kuaishou"``, ``"alipay"``).
    Times are epoch seconds.
    """

    openid: str
    session_key: str = field(repr=False)
    unionid: Optional[str]
    created_at: float
    expires_at: float
    appid: str = ""
    platform: str = "wechat"


@dataclass(frozen=True)
class SessionScope:
    """What a store needs to know about the app whose sessions it reads and writes.

    ``appid``: a session is found only by a scope of its own app (a token is valid for its
    app alone, even in a store and key prefix that several apps share). ``sealer`` seals
    the session_key in persistent stores. ``max_sessions``: how many live sessions a user
    may have; a login beyond it ends the oldest. ``platform``: the app's platform, which
    the sessions read in this scope carry.
    """

    appid: str
    sealer: Sealer = field(repr=False)
    max_sessions: int = DEFAULT_MAX_SESSIONS
    platform: str = "wechat"

    @classmethod
    def for_config(cls, config: WxConfig) -> SessionScope:
        """The scope of the app ``config`` describes: sealed under its ``store_key`` keys
        (the first seals, all open) or, without them, a key derived from its secret.

        One scope per configuration, made on first use: the middleware, its login flow and
        the API clients of one configuration share it (and its derived keys).
        """
        return _scope_for(config)

    def seal_key(self, openid: str, session_key: str) -> str:
        """``session_key`` sealed for a record of ``openid`` in this app."""
        return self.sealer.seal(session_key, self._associated(openid))

    def open_key(self, openid: str, sealed: str) -> Optional[str]:
        """The session_key :meth:`seal_key` sealed for ``openid``, or ``None`` when it does
        not open (another app's record, a retired store key, tampering)."""
        return self.sealer.open(sealed, self._associated(openid))

    def _associated(self, openid: str) -> bytes:
        return f"{self.appid}\x00{openid}".encode()


@functools.lru_cache(maxsize=64)
def _scope_for(config: WxConfig) -> SessionScope:
    materials = sealing_materials(config.secret, config.store_key)
    return SessionScope(
        config.appid, Sealer(materials), config.max_sessions_per_user, config.platform
    )


def key_replaces(current_at: float, new_at: float) -> bool:
    """Whether a session_key WeChat issued at ``new_at`` replaces one issued at
    ``current_at`` (epoch seconds): the newer key wins, so that concurrent logins and
    resets of one user leave all of the user's sessions with the same, latest key."""
    return new_at >= current_at


def over_cap(sessions: Sequence[Tuple[_T, float]], max_sessions: int) -> List[_T]:
    """Which of a user's live ``sessions`` (each a handle and its creation time) end so
    that at most ``max_sessions`` remain: the oldest."""
    if len(sessions) <= max_sessions:
        return []
    ordered = sorted(sessions, key=lambda item: item[1])
    return [handle for handle, _ in ordered[: len(sessions) - max_sessions]]


def sign_with_session_key(session: WxSession | str, payload: str) -> str:
    """The hex ``hmac_sha256(key=session_key, msg=payload)`` of WeChat's user-state
    signatures.

    ``wx.requestVirtualPayment``'s ``signature`` is this over its ``signData``, and
    checksession, resetusersessionkey and getuserencryptkey send it over ``""``. Sources:
    developers.weixin.qq.com/miniprogram/dev/api/payment/wx.requestVirtualPayment.html
    ("用户态签名"), and the pages of user-login/ResetUserSessionKey and
    user-info/internet/getUserEncryptKey. ``session`` is a :class:`WxSession` or the
    session_key itself; the key is used as its UTF-8 bytes, as those pages' samples do.
    """
    key = session.session_key if isinstance(session, WxSession) else session
    return hmac.new(key.encode("utf-8"), payload.encode("utf-8"), hashlib.sha256).hexdigest()


def absolute_expiry(created_at: float, max_age: float) -> float:
    """When a session created at ``created_at`` (epoch seconds) ends however often it is used:
    ``max_age`` seconds later (epoch seconds)."""
    return created_at + max_age


def idle_deadline(expires_at: float, idle_ttl: float, now: float) -> float:
    """The idle deadline (epoch seconds) of a session used at ``now``: ``idle_ttl`` seconds
    later, but never past its absolute expiry ``expires_at``."""
    deadline = now + idle_ttl
    # A conditional, not min(): this runs on every authenticated request, and min() costs
    # several times more.
    return deadline if deadline < expires_at else expires_at


def is_live(idle_until: float, expires_at: float, now: float) -> bool:
    """Whether a session whose idle deadline is ``idle_until`` and whose absolute expiry is
    ``expires_at`` (both epoch seconds) may still be used at ``now``."""
    return now < idle_until and now < expires_at


def deadline_after_use(
    idle_until: float, expires_at: float, idle_ttl: float, now: float
) -> Optional[float]:
    """The idle deadline (epoch seconds) a session should have after a use at ``now``, or
    ``None`` when it is no longer live (:func:`is_live`). When the result equals
    ``idle_until``, the store writes nothing.

    The one slide rule of every store: a move is written only when it is larger than the
    slide granularity, ``idle_ttl / 10`` seconds but at most :data:`MAX_SLIDE_GRANULARITY`
    (60 s for the usual 7200 s). Most uses then cost a store a read and no write, and a
    session may end up to that many seconds before ``idle_ttl`` has passed since its last
    use, never later. A store whose read rewrites the deadline at no extra cost (Redis's
    ``GETEX``) may write every move.
    """
    # is_live() and idle_deadline(), spelled out: this runs on every authenticated request
    # of every store, where each call costs.
    if now >= idle_until or now >= expires_at:
        return None
    deadline = now + idle_ttl
    if deadline > expires_at:
        deadline = expires_at
    granularity = idle_ttl / 10
    if granularity > MAX_SLIDE_GRANULARITY:
        granularity = MAX_SLIDE_GRANULARITY
    return deadline if deadline - idle_until > granularity else idle_until


def quiet_until(idle_until: float, expires_at: float, idle_ttl: float) -> float:
    """Until when (epoch seconds, exclusive) a use of a session changes nothing: before it,
    :func:`deadline_after_use` with this ``idle_ttl`` returns ``idle_until`` unchanged (the
    session is live and the move would be within the slide granularity). A store that
    keeps it per session answers most uses with one comparison instead of the rule.
    """
    granularity = min(idle_ttl / 10, MAX_SLIDE_GRANULARITY)
    return min(idle_until, expires_at, idle_until - idle_ttl + granularity)


def new_token() -> str:
    """A fresh opaque session token (256 bits from :mod:`secrets`)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_key(token: str) -> str:
    """The store key of a token: its sha256, so a store dump holds no usable token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def short_hash(key: str) -> str:
    """How logs name a session or code: the first characters of its (already hashed) key."""
    return key[:12]


def code_key(code: str) -> str:
    """The store key of a login code's record."""
    return hashlib.sha256(b"wxmiddleware-code\x00" + code.encode("utf-8")).hexdigest()


def _code_pad(code: str, length: int) -> bytes:
    # A pad derived from the code alone, independent of code_key; each code seals one token.
    return hashlib.blake2b(
        code.encode("utf-8"), digest_size=length, person=b"wxmw-code-seal"
    ).digest()


def seal_token(code: str, token: str) -> str:
    """Encrypt ``token`` under a key derived from ``code`` (plus an integrity tag)."""
    raw = token.encode("ascii")
    if len(raw) > 48:
        raise ValueError("token too long to seal")
    pad = _code_pad(code, len(raw))
    body = bytes(a ^ b for a, b in zip(raw, pad))
    tag = hmac.new(_code_pad(code, 32), body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(tag + body).decode("ascii")


def unseal_token(code: str, sealed: str) -> Optional[str]:
    """Recover the token sealed by :func:`seal_token`, or ``None`` if it does not verify."""
    try:
        blob = base64.urlsafe_b64decode(sealed.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    tag, body = blob[:16], blob[16:]
    expected = hmac.new(_code_pad(code, 32), body, hashlib.sha256).digest()[:16]
    if not body or not hmac.compare_digest(tag, expected):
        return None
    pad = _code_pad(code, len(body))
    return bytes(a ^ b for a, b in zip(body, pad)).decode("ascii", errors="replace")


class ClaimState(enum.Enum):
    """What a store's ``claim_code`` found for a login code."""

    #: The caller now owns the code: it calls WeChat, then saves the session or releases.
    OWNER = "owner"
    #: Another request owns the code and is logging in with it right now.
    PENDING = "pending"
    #: An earlier login made a session from this code; ``sealed_token`` holds its token.
    USED = "used"


@dataclass(frozen=True)
class CodeClaim:
    """The result of a store's ``claim_code``: a :class:`ClaimState`, and for ``USED`` the
    token of the session made from the code, sealed by :func:`seal_token`."""

    state: ClaimState
    sealed_token: Optional[str] = field(default=None, repr=False)


#: The claim that makes the caller the owner of a code.
CLAIM_OWNER = CodeClaim(ClaimState.OWNER)
#: The claim of a code that another request is logging in with.
CLAIM_PENDING = CodeClaim(ClaimState.PENDING)


def claim_used(sealed_token: str) -> CodeClaim:
    """The claim of a code an earlier login used; ``sealed_token`` is what it stored."""
    return CodeClaim(ClaimState.USED, sealed_token)
