"""Sealing secrets at rest: AES-256-GCM under keys derived with HKDF-SHA256.

Persistent stores (SQLite, Redis) keep a session's session_key only sealed by a
:class:`Sealer`, so a copy of the database file or of Redis holds no usable key. The key
material is the app secret, or the explicit store keys (``WX_STORE_KEY`` / ``store_key=``)
when set; the first material seals, every one of them opens, so keys can be rotated: put
the new one first and keep the old ones after it until the sessions sealed under them have
expired.

A sealed value is ``<kid>.<base64url(nonce | ciphertext | tag)>``: ``kid`` names the key
(8 hex digits of a hash of the derived key, never the key), the nonce is 12 random bytes,
and the associated data binds the value to what the caller says it belongs to (the app and
the user), so a sealed key moved into another record does not open.

Needs the ``cryptography`` package, imported on first use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from .errors import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: HKDF's salt and info: a fixed context, so a key derived here is used for nothing else.
_HKDF_SALT = b"wxmiddleware store sealing v1"
_HKDF_INFO = b"session_key at rest"
_NONCE_BYTES = 12
#: The shortest explicit store key accepted (characters).
MIN_STORE_KEY_LENGTH = 16


def derive_key(material: str) -> bytes:
    """The 32-byte AES key HKDF-SHA256 derives from ``material`` (a secret string)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(hashes.SHA256(), 32, _HKDF_SALT, _HKDF_INFO).derive(material.encode("utf-8"))


def _kid(key: bytes) -> str:
    return hashlib.sha256(b"wxmiddleware kid\x00" + key).hexdigest()[:8]


class Sealer:
    """Seals and opens short secrets under keys derived from ``materials``.

    ``materials`` are secret strings, newest first: the first seals, all of them open.
    Raises :class:`~wxmiddleware.errors.ConfigError` when there is none. The keys are
    derived on first use, so a store that never seals never loads ``cryptography``.
    """

    def __init__(self, materials: Sequence[str]) -> None:
        if not materials or not all(isinstance(m, str) and m for m in materials):
            raise ConfigError("sealing needs at least one non-empty key")
        self._materials: Tuple[str, ...] = tuple(materials)
        self._keys: Optional[List[Tuple[str, AESGCM]]] = None
        self._by_kid: Dict[str, AESGCM] = {}
        # cryptography's InvalidTag, looked up with the keys (not on every open).
        self._invalid: Tuple[type[Exception], ...] = ()

    def __repr__(self) -> str:
        return f"Sealer({len(self._materials)} key(s))"

    def _ready(self) -> List[Tuple[str, AESGCM]]:
        keys = self._keys
        if keys is None:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            keys = []
            for material in self._materials:
                key = derive_key(material)
                keys.append((_kid(key), AESGCM(key)))
            self._by_kid = dict(reversed(keys))
            self._invalid = (InvalidTag, ValueError, binascii.Error)
            self._keys = keys
        return keys

    def seal(self, plaintext: str, associated: bytes) -> str:
        """``plaintext`` sealed under the newest key, bound to ``associated``."""
        kid, aead = self._ready()[0]
        nonce = os.urandom(_NONCE_BYTES)
        blob = nonce + aead.encrypt(nonce, plaintext.encode("utf-8"), associated)
        return f"{kid}.{base64.urlsafe_b64encode(blob).decode('ascii').rstrip('=')}"

    def open(self, sealed: str, associated: bytes) -> Optional[str]:
        """What :meth:`seal` sealed, or ``None`` when no key opens it for ``associated``
        (another key, another record, a forgery, or not a sealed value at all)."""
        if self._keys is None:
            self._ready()
        kid, _, body = sealed.partition(".")
        aead = self._by_kid.get(kid)
        if aead is None:
            return None
        try:
            blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], associated)
            return plain.decode("utf-8")
        except self._invalid:
            return None


def sealing_materials(secret: str, store_keys: Sequence[str]) -> Tuple[str, ...]:
    """The key materials for an app: its explicit store keys when given, else its secret."""
    return tuple(store_keys) if store_keys else (secret,)
