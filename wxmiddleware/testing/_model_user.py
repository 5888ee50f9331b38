"""The fake WeChat's server APIs about one user: those signed with the user's session_key
(checksession, resetusersessionkey, getuserencryptkey) and those that take a code or data
from the mini-program (phone numbers, plugin openpids, encrypted data checks); part of
:class:`~wxmiddleware.testing.model.WeChatModel`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any, Callable, Dict, Mapping, Optional

from ._model_base import ModelBase, derived_id, new_session_key
from ._replies import WeChatError


class UserApis(ModelBase):
    """Session_key signatures, phone and plugin codes and encrypted data, and the server
    APIs that use them (see :class:`~wxmiddleware.testing.model.WeChatModel` for how they
    answer)."""

    def issue_phone_code(
        self,
        user: str = "alice",
        phone: str = "13800138000",
        *,
        country_code: str = "86",
        ttl: Optional[float] = None,
    ) -> str:
        """Return a single-use code for ``phone``, as the mini-program's ``getPhoneNumber``
        gives, valid ``ttl`` seconds (default :attr:`CODE_TTL`).

        A request that names an ``openid`` (optional, as at WeChat) must name ``user``'s,
        else it answers 40029 like an unknown code.
        """
        expires_at = time.monotonic() + (self.CODE_TTL if ttl is None else ttl)
        with self._lock:
            return self._phone_codes.issue(user, phone, country_code, expires_at)

    def issue_plugin_code(self, user: str = "alice", *, ttl: Optional[float] = None) -> str:
        """Return a single-use code, as ``wx.pluginLogin`` gives, valid ``ttl`` seconds
        (default :attr:`CODE_TTL`); getpluginopenpid exchanges it for
        :meth:`openpid_for` ``(user)``."""
        code = secrets.token_hex(16)
        with self._lock:
            self._plugin_codes[code] = (user, time.monotonic() + (ttl or self.CODE_TTL))
        return code

    def openpid_for(self, user: str) -> str:
        """The openpid getpluginopenpid reports for ``user``."""
        return derived_id("p", f"openpid:{self.appid}:{user}")

    def remember_encrypted_data(
        self, encrypted_data: str, create_time: Optional[int] = None
    ) -> None:
        """Make checkencryptedmsg know ``encrypted_data`` (the base64 text) as WeChat's,
        made at ``create_time`` (Unix seconds; default now)."""
        digest = hashlib.sha256(encrypted_data.encode("utf-8")).hexdigest()
        with self._lock:
            self._encrypted_data[digest] = int(time.time()) if create_time is None else create_time

    def _signed_user(self, single: Callable[[str], Optional[str]]) -> str:
        """The openid of a call signed with the user's current session_key, as checksession,
        resetusersessionkey and getuserencryptkey check it (40097, 87009)."""
        openid, signature = single("openid") or "", single("signature") or ""
        if single("sig_method") != "hmac_sha256" or not openid or not signature:
            raise WeChatError(40097)
        with self._lock:
            session_key = self._session_keys.get(openid)
        if session_key is None:
            raise WeChatError(87009)
        expected = hmac.new(session_key.encode("utf-8"), b"", hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise WeChatError(87009)
        return openid

    def _reset_session_key(self, single: Callable[[str], Optional[str]]) -> Dict[str, Any]:
        openid = self._signed_user(single)
        session_key = self.session_key_factory()
        with self._lock:
            self._session_keys[openid] = session_key
        return {"errcode": 0, "errmsg": "ok", "openid": openid, "session_key": session_key}

    def _user_encrypt_keys(
        self, single: Callable[[str], Optional[str]], now: float
    ) -> Dict[str, Any]:
        openid = self._signed_user(single)
        with self._lock:
            keys = self._encrypt_keys.setdefault(openid, [])
            if not keys or now - keys[-1]["born"] >= self.ENCRYPT_KEY_TTL:
                keys.append(
                    {
                        "encrypt_key": new_session_key(),
                        "iv": secrets.token_hex(8),
                        "version": len(keys) + 1,
                        "create_time": int(time.time()),
                        "born": now,
                    }
                )
            recent = [dict(key) for key in reversed(keys[-3:])]
        for key in recent:
            key["expire_in"] = max(0, int(key.pop("born") + self.ENCRYPT_KEY_TTL - now))
        return {"errcode": 0, "errmsg": "ok", "key_info_list": recent}

    def _check_encrypted_msg(self, request: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
        digest = None if request is None else request.get("encrypted_msg_hash")
        if not isinstance(digest, str) or not digest:
            raise WeChatError(40097)
        with self._lock:
            created = self._encrypted_data.get(digest)
        if created is None:
            raise WeChatError(1, "encrypted data not exist")
        return {"errcode": 0, "errmsg": "ok", "vaild": True, "create_time": created}

    def _plugin_openpid(self, request: Optional[Mapping[str, Any]], now: float) -> Dict[str, Any]:
        code = None if request is None else request.get("code")
        if not isinstance(code, str):
            raise WeChatError(47001)
        with self._lock:
            user, expires_at = self._plugin_codes.pop(code, ("", 0.0))
        if not user or expires_at <= now:
            raise WeChatError(40029)
        return {"errcode": 0, "errmsg": "ok", "openpid": self.openpid_for(user)}

    def _phone_number(self, request: Optional[Mapping[str, Any]], now: float) -> Dict[str, Any]:
        code = None if request is None else request.get("code")
        if request is None or not isinstance(code, str):
            raise WeChatError(47001)
        with self._lock:
            issued = self._phone_codes.find_unused(code, now)
            # Naming an openid is optional, as at WeChat; a named one must be the user's.
            owner = self.openid_for(issued.user)
            if request.get("openid", owner) != owner:
                raise WeChatError(40029)
            issued.used = True
        pure, country_code = issued.phone, issued.country_code
        return {
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                # WeChat gives numbers outside mainland China with their country code.
                "phoneNumber": pure if country_code == "86" else f"+{country_code}{pure}",
                "purePhoneNumber": pure,
                "countryCode": country_code,
                # A wall-clock Unix time, unlike the monotonic times of the checks.
                "watermark": {"timestamp": int(time.time()), "appid": self.appid},
            },
        }
