"""The session record, its lifetime, its tokens, and the sealed record that makes login
idempotent.

Nothing here does I/O. Persistent stores key sessions by :func:`token_key` so that a dump of
the store holds no usable token, and remember a login code only as :func:`code_key` plus the
token sealed under a key derived from the code (:func:`seal_token`): only a holder of the code
can get the token back.

A session's lifetime is decided here, once, for every store: it ends at its absolute expiry
(:func:`absolute_expiry`) or when it has not been used for ``idle_ttl`` seconds, whichever
comes first (:func:`is_live`); each use moves the idle deadline (:func:`idle_deadline`), and
a store writes that move only when it is larger than a slide granularity
(:func:`deadline_after_use`). Stores only persist the deadlines and expire what is past them.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

TOKEN_BYTES = 32
# token_urlsafe(32) gives 43 characters; anything far longer is not one of ours.
MAX_TOKEN_LENGTH = 128
#: Seconds: the most a stored idle deadline may lag behind the last use (see
#: :func:`deadline_after_use`).
MAX_SLIDE_GRANULARITY = 60.0


@dataclass(frozen=True)
class WxSession:
    """One logged-in mini-program user. ``session_key`` never leaves the server."""

    openid: str
    session_key: str = field(repr=False)
    unionid: Optional[str]
    created_at: float
    expires_at: float

    def to_json(self) -> str:
        """Serialise for a store (JSON, never pickle)."""
        return json.dumps(
            {
                "openid": self.openid,
                "session_key": self.session_key,
                "unionid": self.unionid,
                "created_at": self.created_at,
                "expires_at": self.expires_at,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> WxSession:
        """Parse what :meth:`to_json` wrote."""
        data: Dict[str, Any] = json.loads(text)
        return cls(
            openid=data["openid"],
            session_key=data["session_key"],
            unionid=data.get("unionid"),
            created_at=float(data["created_at"]),
            expires_at=float(data["expires_at"]),
        )


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
