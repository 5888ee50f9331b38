"""The session record of the persistent stores (SQLite and Redis): JSON, session_key sealed.

A record is one JSON object whose first two members are the session_key's issue time and
the sealed key, then the app (``a``), the openid (``o``), the unionid (``u``, left out when
there is none), the creation time (``c``), the absolute expiry (``e``, epoch seconds) and
the platform (``p``, left out for ``wechat``)::

    {"kt":1764000000.25,"sk":"<kid>.<sealed>","a":"wx…","o":"o…","u":"u…",
     "c":1764000000.25,"e":1766592000.25}

A record opens only in a scope of its app and platform.

One-letter names because a store keeps one record per session: in Redis they keep a session
under its memory budget (``benchmarks/scale.py`` measures bytes per session).

The fixed head lets a store replace the key without parsing the rest: SQLite does it here
(:func:`rekeyed`), Redis in a one-key script that matches :data:`HEAD` (see
:mod:`wxmiddleware.stores._redis_layout`). The key is sealed by the app's
:class:`~wxmiddleware.session.SessionScope`, bound to the app and the openid; the token is
never in a record (stores key records by its hash).
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, NamedTuple, Optional, Union

from ..session import SessionScope, WxSession, key_replaces

#: The head of a record: the key's issue time and the sealed key.
HEAD = re.compile(r'^\{"kt":([^,]+),"sk":"([^"]*)",')


class PublicFields(NamedTuple):
    """What a record shows without its key: enough to list, index and cap sessions."""

    appid: str
    openid: str
    unionid: Optional[str]
    created_at: float
    expires_at: float
    key_at: float


def head(sealed: str, key_at: float) -> str:
    """The head of a record whose key, issued at ``key_at``, is ``sealed``."""
    return f'{{"kt":{key_at!r},"sk":"{sealed}",'


def appid_member(appid: str) -> str:
    """The member that follows the head of every record of ``appid``."""
    return f'"a":{json.dumps(appid)},'


def encode(session: WxSession, scope: SessionScope, sealed: Optional[str] = None) -> str:
    """The record of ``session`` in ``scope``'s app; its key was issued at its creation.

    ``sealed`` is the key already sealed by ``scope`` (a login seals it once for all of the
    user's records).
    """
    if sealed is None:
        sealed = scope.seal_key(session.openid, session.session_key)
    fields: Dict[str, Any] = {"o": session.openid}
    if session.unionid is not None:
        fields["u"] = session.unionid
    fields["c"] = session.created_at
    fields["e"] = session.expires_at
    if scope.platform != "wechat":
        fields["p"] = scope.platform
    rest = json.dumps(fields, separators=(",", ":"))
    return head(sealed, float(session.created_at)) + appid_member(scope.appid) + rest[1:]


def public_fields(raw: Union[str, bytes]) -> PublicFields:
    """The public fields of a record; ``ValueError`` (or ``KeyError``/``TypeError``) when
    it is not one (a malformed value, or a record written before session_keys were
    sealed)."""
    data: Dict[str, Any] = json.loads(raw)
    unionid = data.get("u")
    return PublicFields(
        appid=str(data["a"]),
        openid=str(data["o"]),
        unionid=None if unionid is None else str(unionid),
        created_at=float(data["c"]),
        expires_at=float(data["e"]),
        key_at=float(data["kt"]),
    )


def decode(raw: Union[str, bytes], scope: SessionScope) -> Optional[WxSession]:
    """The session a record holds for ``scope``'s app, or ``None``: another app's (or
    platform's) record,
    a key no store key opens, or a record from before session_keys were sealed.

    Raises ``ValueError`` for a value that is not JSON.
    """
    data: Dict[str, Any] = json.loads(raw)
    try:
        if data["a"] != scope.appid or data.get("p", "wechat") != scope.platform:
            return None
        openid = data["o"]
        key = scope.open_key(openid, data["sk"])
        if key is None:
            return None
        return WxSession(
            openid=openid,
            session_key=key,
            unionid=data.get("u"),
            created_at=float(data["c"]),
            expires_at=float(data["e"]),
            appid=scope.appid,
            platform=scope.platform,
        )
    except (KeyError, TypeError):
        return None


def rekeyed(raw: str, sealed: str, key_at: float) -> Optional[str]:
    """``raw`` holding the key ``sealed`` (issued at ``key_at``) instead of its own, or
    ``None`` when it holds that key already, its own is newer
    (:func:`~wxmiddleware.session.key_replaces`), or ``raw`` is not a sealed record."""
    match = HEAD.match(raw)
    if match is None or match.group(2) == sealed:
        return None
    if not key_replaces(float(match.group(1)), key_at):
        return None
    return head(sealed, key_at) + raw[match.end() :]
