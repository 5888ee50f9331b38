"""WeChat's server APIs without I/O: access tokens, checksession, phone numbers, sealed calls.

Request builders and reply parsers, plus the decisions around them written once as flows:
generators that yield the package's effects (:mod:`wxmiddleware.core._effects`: store calls
for the shared value and its lock, HTTP calls, sleeps) like the login flow does. The sync and
async performers of :mod:`wxmiddleware._perform` carry them out.

A call WeChat's API security covers (``ApiRequest.secure``) is sealed when the
configuration holds API security keys: :func:`sealed_exchange`, on
:mod:`wxmiddleware.wechat._security`.

The access token lives in the session store (``set_value``), so every process and machine
of the app shares one: ``/cgi-bin/token`` invalidates the previous token five minutes after
issuing a new one, so processes that each kept their own would knock each other's out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from ..config import WxConfig
from ..core._effects import Flow, HttpCall, Sleep, StoreCall
from ..core._upstream import exchange
from ..errors import (
    BadRequest,
    InvalidCode,
    InvalidSession,
    RateLimited,
    UpstreamBusy,
    UpstreamError,
    UpstreamTimeout,
    WxError,
)
from ..session import SessionScope, WxSession, sign_with_session_key
from ._paths import (
    CHECK_ENCRYPTED_MSG_PATH,
    CHECK_SESSION_PATH,
    PHONE_NUMBER_PATH,
    PLUGIN_OPENPID_PATH,
    RESET_SESSION_KEY_PATH,
    STABLE_TOKEN_PATH,
    TOKEN_PATH,
    USER_ENCRYPT_KEY_PATH,
)
from ._protocol import (
    MAX_ATTEMPTS,
    RETRY_BACKOFF_SECONDS,
    ApiRequest,
    reply_errcode,
    reply_object,
    retry_delay,
)
from ._security import (
    ANSWER_HEADERS,
    SECURITY_ERRCODES,
    ApiSecurity,
    ApiSecurityError,
    Sealed,
    answer_is_signed,
    security_refusal,
)

logger = logging.getLogger("wxmiddleware")

#: errcodes saying the access token a call carried is invalid (40001, 40014) or expired
#: (42001): the token is dropped and the call made once more with a fresh one.
TOKEN_REJECTED_ERRCODES = frozenset({40001, 40014, 42001})
#: checksession's answer for a session_key that is no longer the user's current one.
SESSION_KEY_EXPIRED_ERRCODE = 87009
#: errcodes of the calls signed with a session_key (resetusersessionkey, getuserencryptkey)
#: that say WeChat no longer accepts the session: 87009, an invalid signature (the key is
#: no longer the user's current one), and 87008 (WeChat refuses the user's session).
SESSION_REFUSED_ERRCODES = frozenset({87008, SESSION_KEY_EXPIRED_ERRCODE})
#: Refresh this many seconds before the token expires: WeChat's stable_token hands out the
#: next token in the last five minutes, while the old one stays valid until its expiry.
REFRESH_MARGIN_SECONDS = 300.0
#: A token closer than this to its expiry could expire while a call carries it.
EXPIRY_GUARD_SECONDS = 60.0
#: How often a process that waits for another one's refresh looks at the store again.
LOCK_POLL_SECONDS = 0.05
#: A phone number code is a few dozen characters; anything far longer is not one.
MAX_PHONE_CODE_LENGTH = 512
#: Phone number ``encryptedData`` is a few hundred base64 characters; this bounds the hash.
MAX_ENCRYPTED_DATA_LENGTH = 64 * 1024

_T = TypeVar("_T")


class AccessTokenRejected(UpstreamError):
    """WeChat refused the access token a call carried (errcode 40001, 40014 or 42001).

    The managers drop the token and retry the call once with a fresh one; this reaches the
    caller only when WeChat refuses the fresh token too.
    """

    error = "access_token_rejected"
    default_message = "WeChat rejected the app's access token."


# --- requests and replies ---


def access_token_request(
    config: WxConfig, *, stable: bool = True, force_refresh: bool = False
) -> ApiRequest:
    """Fetch the app's access token: ``POST /cgi-bin/stable_token``, or ``GET /cgi-bin/token``.

    ``force_refresh`` (stable_token only) makes WeChat replace a token that is still valid.
    """
    credentials = {"appid": config.appid, "secret": config.secret}
    if stable:
        body = {"grant_type": "client_credential", **credentials, "force_refresh": force_refresh}
        return ApiRequest("POST", STABLE_TOKEN_PATH, body=body, with_token=False)
    params = {"grant_type": "client_credential", **credentials}
    return ApiRequest("GET", TOKEN_PATH, params=params, with_token=False)


def _signed_by_session(session: WxSession) -> Dict[str, str]:
    # The user-state signature these calls carry: the key itself never leaves the server.
    return {
        "openid": session.openid,
        "signature": sign_with_session_key(session, ""),
        "sig_method": "hmac_sha256",
    }


def check_session_request(session: WxSession) -> ApiRequest:
    """``GET /wxa/checksession``: is ``session``'s session_key still the user's current one?

    The session_key itself never leaves the server: WeChat gets its HMAC signature.
    """
    return ApiRequest("GET", CHECK_SESSION_PATH, params=_signed_by_session(session))


def reset_session_key_request(session: WxSession) -> ApiRequest:
    """``GET /wxa/resetusersessionkey`` (access_token, openid, signature, sig_method): WeChat
    issues the user a new session_key, keeping the old one's expiry.

    Source: developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/user-login/ResetUserSessionKey.html;
    the answer is ``{"errcode": 0, "errmsg": "ok", "openid", "session_key"}``.
    """
    return ApiRequest("GET", RESET_SESSION_KEY_PATH, params=_signed_by_session(session))


def user_encrypt_keys_request(session: WxSession) -> ApiRequest:
    """``POST /wxa/business/getuserencryptkey?access_token&openid&signature&sig_method``:
    the user's last three encryption keys (those of ``wx.getUserCryptoManager()``).

    Source: developers.weixin.qq.com/minigame/dev/api-backend/open-api/internet/
    internet.getUserEncryptKey.html (the parameters in the query, as its curl example sends
    them; "signature = hmac_sha256(session_key, "")"); the answer is
    ``{"errcode": 0, "errmsg": "ok", "key_info_list": [{"encrypt_key", "version",
    "expire_in", "iv", "create_time"}, …]}``.
    """
    return ApiRequest(
        "POST", USER_ENCRYPT_KEY_PATH, params=_signed_by_session(session), secure=True
    )


def phone_number_request(phone_code: str) -> ApiRequest:
    """``POST /wxa/business/getuserphonenumber`` for the code of ``getPhoneNumber``.

    Raises :class:`~wxmiddleware.errors.BadRequest` for a code that cannot be one, so a
    malformed request never costs a call to WeChat.
    """
    if not isinstance(phone_code, str) or not phone_code.strip():
        raise BadRequest("The phone number code is missing.")
    if len(phone_code) > MAX_PHONE_CODE_LENGTH:
        raise BadRequest("The phone number code is too long.")
    return ApiRequest("POST", PHONE_NUMBER_PATH, body={"code": phone_code}, secure=True)


def check_encrypted_data_request(encrypted_data: str) -> ApiRequest:
    """``POST /wxa/business/checkencryptedmsg`` ``{"encrypted_msg_hash"}``: did WeChat make
    this ``encryptedData`` (phone number data only, of the last three days)?

    WeChat gets the hex SHA-256 of the base64 text, never the data. Source:
    developers.weixin.qq.com/minigame/dev/api-backend/open-api/user-info/
    auth.checkEncryptedData.html (its example hashes the base64 string as sent). Raises
    :class:`~wxmiddleware.errors.BadRequest` for missing or oversized data.
    """
    if not isinstance(encrypted_data, str) or not encrypted_data.strip():
        raise BadRequest("The encrypted data is missing.")
    if len(encrypted_data) > MAX_ENCRYPTED_DATA_LENGTH:
        raise BadRequest("The encrypted data is too long.")
    digest = hashlib.sha256(encrypted_data.encode("utf-8")).hexdigest()
    return ApiRequest(
        "POST", CHECK_ENCRYPTED_MSG_PATH, body={"encrypted_msg_hash": digest}, secure=True
    )


def plugin_openpid_request(code: str) -> ApiRequest:
    """``POST /wxa/getpluginopenpid`` ``{"code"}``: the plugin user's openpid for the code
    of ``wx.pluginLogin`` (getPluginOpenPId in WeChat's server-API reference). Raises
    :class:`~wxmiddleware.errors.BadRequest` for a code that cannot be one."""
    if not isinstance(code, str) or not code.strip():
        raise BadRequest("The plugin login code is missing.")
    if len(code) > MAX_PHONE_CODE_LENGTH:
        raise BadRequest("The plugin login code is too long.")
    return ApiRequest("POST", PLUGIN_OPENPID_PATH, body={"code": code}, secure=True)


def api_error(errcode: int, errmsg: str) -> WxError:
    """Map a server API ``errcode`` to the error the caller sees."""
    if errcode in TOKEN_REJECTED_ERRCODES:
        return AccessTokenRejected(errcode=errcode)
    if errcode in SECURITY_ERRCODES:
        return security_refusal(errcode)
    if errcode in SESSION_REFUSED_ERRCODES:
        return InvalidSession(
            "WeChat no longer accepts this session's key; log in again.", errcode=errcode
        )
    if errcode == -1:
        return UpstreamBusy(errcode=errcode)
    if errcode == 40029:
        return InvalidCode(
            "The code is invalid, expired or was already used; get a new one.", errcode=errcode
        )
    if errcode == 45011:
        return RateLimited(errcode=errcode, headers=[("Retry-After", "60")])
    if errcode in (40013, 40125, 40164):
        cause = (
            "this server's IP address is not on the mini-program's API IP whitelist"
            if errcode == 40164
            else "WeChat rejected the appid or secret: check WX_APPID and WX_SECRET"
        )
        return UpstreamError("The WeChat API is misconfigured.", errcode=errcode, detail=cause)
    return UpstreamError(
        f"WeChat refused the call (errcode {errcode}).",
        errcode=errcode,
        detail=f"errmsg {errmsg[:100]!r}",
    )


def parse_reply(status: int, body: bytes) -> Dict[str, Any]:
    """Parse any JSON server API reply: the object, or the error its ``errcode`` maps to.

    Pass it to :meth:`~wxmiddleware.wechat.api.AccessTokenManager.call` for an API this
    package does not wrap; a refused token then gets its one retry like any other call.
    """
    data = reply_object(status, body)
    errcode = reply_errcode(data)
    if errcode:
        raise api_error(errcode, str(data.get("errmsg", "")))
    return data


@dataclass(frozen=True)
class TokenReply:
    """What a token endpoint answered: the token and its lifetime in seconds."""

    access_token: str = field(repr=False)
    expires_in: int


def parse_access_token(status: int, body: bytes) -> TokenReply:
    """Parse a ``/cgi-bin/token`` or ``/cgi-bin/stable_token`` reply."""
    data = parse_reply(status, body)
    token = data.get("access_token")
    expires_in = data.get("expires_in")
    if not isinstance(token, str) or not token:
        raise UpstreamError("WeChat answered without an access token.")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
        raise UpstreamError("WeChat answered an access token without a valid lifetime.")
    return TokenReply(token, expires_in)


def parse_check_session(status: int, body: bytes) -> bool:
    """Parse a checksession reply: ``True`` for errcode 0, ``False`` for 87009."""
    data = reply_object(status, body)
    errcode = reply_errcode(data)
    if errcode == SESSION_KEY_EXPIRED_ERRCODE:
        return False
    if errcode:
        raise api_error(errcode, str(data.get("errmsg", "")))
    return True


def parse_reset_session_key(status: int, body: bytes) -> str:
    """Parse a resetusersessionkey reply: the user's new session_key.

    87009/87008 raise :class:`~wxmiddleware.errors.InvalidSession` (401), 45011
    :class:`~wxmiddleware.errors.RateLimited` (429), as :func:`api_error` maps them.
    """
    key = parse_reply(status, body).get("session_key")
    if not isinstance(key, str) or not key:
        raise UpstreamError("WeChat answered a session key reset without a session_key.")
    return key


@dataclass(frozen=True)
class UserEncryptKey:
    """One of the user's encryption keys (``getuserencryptkey``'s ``key_info_list``).

    ``encrypt_key`` (base64) and ``iv`` are what the mini-program's
    ``UserCryptoManager.getLatestUserKey()`` gives as ``encryptKey`` and ``iv``; ``version``
    tells which key a message used; ``expire_in`` is the seconds it has left (0: expired);
    ``create_time`` is when WeChat made it (Unix seconds). WeChat does not document the
    cipher the mini-program uses with them (it leaves that to the developer), so this
    package ships no decryption for it.
    """

    encrypt_key: str = field(repr=False)
    iv: str = field(repr=False)
    version: int
    expire_in: int
    create_time: int


def parse_user_encrypt_keys(status: int, body: bytes) -> List[UserEncryptKey]:
    """Parse a getuserencryptkey reply: its ``key_info_list``, as WeChat orders it."""
    listed = parse_reply(status, body).get("key_info_list")
    if not isinstance(listed, list):
        raise UpstreamError("WeChat answered without a key_info_list.")
    keys = []
    for item in listed:
        try:
            keys.append(
                UserEncryptKey(
                    encrypt_key=str(item["encrypt_key"]),
                    iv=str(item["iv"]),
                    version=int(item["version"]),
                    expire_in=int(item["expire_in"]),
                    create_time=int(item["create_time"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            raise UpstreamError("WeChat answered a malformed key_info_list.") from None
    return keys


def parse_phone_number(status: int, body: bytes) -> Dict[str, Any]:
    """Parse a getuserphonenumber reply: its ``phone_info`` object.

    ``phone_info`` holds ``phoneNumber`` (with the country code for numbers outside
    mainland China), ``purePhoneNumber``, ``countryCode`` and ``watermark``.
    """
    info = parse_reply(status, body).get("phone_info")
    if not isinstance(info, dict) or not isinstance(info.get("phoneNumber"), str):
        raise UpstreamError("WeChat answered without a phone number.")
    return info


@dataclass(frozen=True)
class EncryptedDataCheck:
    """checkencryptedmsg's answer: whether WeChat made the data (its ``vaild``, sic) and
    when (``create_time``, Unix seconds; ``None`` when WeChat gives none)."""

    valid: bool
    create_time: Optional[int]


#: checkencryptedmsg's errcode for data it does not know ("加密数据不存在": not made by
#: WeChat, older than three days, or its key gone): a verdict, not a failure.
ENCRYPTED_DATA_UNKNOWN_ERRCODE = 1


def parse_check_encrypted_data(status: int, body: bytes) -> EncryptedDataCheck:
    """Parse a checkencryptedmsg reply: errcode 1 (unknown data) is ``valid=False``.
    WeChat spells the field ``vaild``; ``valid`` is read too, should it ever fix that."""
    data = reply_object(status, body)
    if reply_errcode(data) == ENCRYPTED_DATA_UNKNOWN_ERRCODE:
        return EncryptedDataCheck(False, None)
    data = parse_reply(status, body)
    valid = data.get("vaild", data.get("valid"))
    created = data.get("create_time")
    if not isinstance(valid, bool):
        raise UpstreamError("WeChat answered an encrypted data check without a verdict.")
    if isinstance(created, bool) or not isinstance(created, int):
        created = None
    return EncryptedDataCheck(valid, created)


def parse_plugin_openpid(status: int, body: bytes) -> str:
    """Parse a getpluginopenpid reply: the ``openpid``."""
    openpid = parse_reply(status, body).get("openpid")
    if not isinstance(openpid, str) or not openpid:
        raise UpstreamError("WeChat answered without an openpid.")
    return openpid


# --- sealed calls (API security) ---


def _sealed_call(
    security: ApiSecurity, config: WxConfig, request: ApiRequest, token: str
) -> Tuple[Sealed, HttpCall]:
    """One attempt's sealed call and its :class:`HttpCall` (a fresh nonce, IV and time)."""
    sealed = security.seal(request.url(config), config.appid, request.sealed_fields())
    call = HttpCall(
        request.method,
        sealed.url,
        {"access_token": token},
        headers=sealed.headers,
        content=sealed.content,
        reply_headers=ANSWER_HEADERS,
    )
    return sealed, call


def sealed_exchange(
    config: WxConfig,
    security: ApiSecurity,
    request: ApiRequest,
    parse: Callable[[int, bytes], _T],
    access_token: str,
) -> Flow[_T]:
    """:func:`~wxmiddleware.core.exchange` for a sealed call: send ``request`` encrypted and
    signed (:meth:`ApiSecurity.seal`), open WeChat's answer (:meth:`ApiSecurity.open`:
    verified against the platform certificate, within the time window, decrypted) and
    return ``parse(status, plaintext)``.

    The one retry rule (:func:`~wxmiddleware.wechat._protocol.retry_delay`) applies; each
    attempt is sealed anew (its own ``_n``, IV and timestamp). An unsigned answer is read
    only as a failure: its errcode's error (40230-40240: :class:`ApiSecurityError`), or,
    naming none, :class:`ApiSecurityError`. Every failure of the security is logged (the
    path and the cause, never a key) and raised as a ``502``.
    """
    attempt = 1
    while True:
        sealed, call = _sealed_call(security, config, request, access_token)
        try:
            status, body, headers = yield call
            if status == 200 and answer_is_signed(headers):
                return parse(status, security.open(sealed, body, headers))
            data = reply_object(status, body)
            errcode = reply_errcode(data)
            if not errcode:
                raise ApiSecurityError(
                    "WeChat's answer failed the API security check.",
                    detail="the answer to a sealed call is not signed (no Wechatmp-Signature):"
                    " refused unread",
                )
            raise api_error(errcode, str(data.get("errmsg", "")))
        except ApiSecurityError as error:
            logger.error("WeChat API security: %s: %s", request.path, error.detail)
            raise
        except WxError as error:
            delay = retry_delay(attempt, error)
            if delay is None:
                raise
        yield Sleep(delay)
        attempt += 1


def _exchange(
    policy: TokenPolicy, request: ApiRequest, parse: Callable[[int, bytes], _T], token: str
) -> Flow[_T]:
    """One call with ``token``: sealed when ``request`` is ``secure`` and the app has API
    security keys, else plain."""
    security = policy.config.api_security if request.secure else None
    if security is not None:
        return sealed_exchange(policy.config, security, request, parse, token)
    return exchange(policy.config, request, parse, token)


# --- the shared access token ---


@dataclass(frozen=True)
class AccessToken:
    """The access token as the store keeps it, with when to refresh it (epoch seconds)."""

    value: str = field(repr=False)
    expires_at: float
    refresh_at: float

    @classmethod
    def issued(cls, reply: TokenReply, now: float, margin: float) -> AccessToken:
        """The record of a token just fetched.

        It is refreshed ``margin`` seconds before it expires, or half-way through a lifetime
        shorter than twice the margin, so a short-lived token is not fetched on every call.
        """
        lifetime = reply.expires_in
        return cls(reply.access_token, now + lifetime, now + max(lifetime - margin, lifetime / 2))

    @classmethod
    def from_record(cls, record: Optional[str]) -> Optional[AccessToken]:
        """Parse what :meth:`to_record` wrote; ``None`` for nothing or something else."""
        if record is None:
            return None
        try:
            data = json.loads(record)
            return cls(str(data["token"]), float(data["expires_at"]), float(data["refresh_at"]))
        except (ValueError, KeyError, TypeError):
            return None

    def to_record(self) -> str:
        """Serialise for the store (JSON)."""
        return json.dumps(
            {"token": self.value, "expires_at": self.expires_at, "refresh_at": self.refresh_at}
        )

    def fresh(self, now: float) -> bool:
        """Whether nobody need refresh it yet."""
        return now < self.refresh_at

    def usable(self, now: float) -> bool:
        """Whether it may still carry a call while another process fetches its successor."""
        return now < self.expires_at - EXPIRY_GUARD_SECONDS


@dataclass(frozen=True)
class TokenPolicy:
    """How one app's access token is fetched, shared and refreshed.

    ``stable`` selects ``/cgi-bin/stable_token`` (the default) over ``/cgi-bin/token``.
    """

    config: WxConfig
    stable: bool = True
    refresh_margin: float = REFRESH_MARGIN_SECONDS

    @property
    def name(self) -> str:
        """The name of the shared value, and of the lock its refresher holds."""
        return f"wxmiddleware:access_token:{self.config.appid}"

    @property
    def lock_ttl(self) -> float:
        """How long the refresher's lock lasts: longer than a fetch may take (two attempts
        and the pause between them), so a refresher that died frees it soon after."""
        attempt = self.config.connect_timeout + self.config.read_timeout
        return MAX_ATTEMPTS * attempt + RETRY_BACKOFF_SECONDS + 1.0


def _fetch_token(policy: TokenPolicy, *, force_refresh: bool = False) -> Flow[AccessToken]:
    request = access_token_request(policy.config, stable=policy.stable, force_refresh=force_refresh)
    reply = yield from exchange(policy.config, request, parse_access_token)
    logger.info(
        "access token: fetched from %s%s, valid %d s",
        request.path,
        " (force_refresh)" if force_refresh else "",
        reply.expires_in,
    )
    return AccessToken.issued(reply, time.time(), policy.refresh_margin)


def _read_token(policy: TokenPolicy) -> Flow[Optional[AccessToken]]:
    record = yield StoreCall("get_value", (policy.name,))
    return AccessToken.from_record(record)


def access_token_flow(policy: TokenPolicy, rejected: Optional[str] = None) -> Flow[str]:
    """The app's access token: the shared one while fresh, else a new one.

    One process at a time refreshes (it holds the store's lock). The others keep using the
    old token while it is :meth:`AccessToken.usable`, or wait for the refresher's result;
    a refresher that failed or died lets the next one try. ``rejected`` names a token that
    WeChat just refused, which is never handed out again.
    """
    deadline = time.monotonic() + policy.lock_ttl + 1.0

    def good(token: AccessToken) -> bool:
        return token.fresh(time.time()) and token.value != rejected

    current = yield from _read_token(policy)
    if current is not None and good(current):
        return current.value
    while True:
        owner = yield StoreCall("acquire_lock", (policy.name, policy.lock_ttl))
        if owner is not None:
            break
        if current is not None and current.value != rejected and current.usable(time.time()):
            return current.value
        if time.monotonic() >= deadline:
            raise UpstreamTimeout("Another process is still fetching the WeChat access token.")
        yield Sleep(LOCK_POLL_SECONDS)
        current = yield from _read_token(policy)
        if current is not None and good(current):
            return current.value
    try:
        # The previous holder may have stored a new token while this process waited.
        current = yield from _read_token(policy)
        if current is None or not good(current):
            fetched = yield from _fetch_token(policy)
            if fetched.value == rejected and policy.stable:
                # stable_token hands out the current token until it nears its expiry; one
                # that WeChat refuses all the same can only be replaced by force.
                fetched = yield from _fetch_token(policy, force_refresh=True)
            ttl = fetched.expires_at - time.time()
            yield StoreCall("set_value", (policy.name, fetched.to_record(), ttl))
            current = fetched
    except GeneratorExit:
        raise
    except BaseException:  # a cancelled call (asyncio) must release the lock too
        yield StoreCall("release_lock", (policy.name, owner))
        raise
    yield StoreCall("release_lock", (policy.name, owner))
    return current.value


def invalidate_flow(policy: TokenPolicy, token: str) -> Flow[None]:
    """Drop ``token`` from the store, unless another process already replaced it.

    Reading and deleting are two steps: at worst a successor stored in between is dropped
    too, and the next call fetches another.
    """
    current = yield from _read_token(policy)
    if current is not None and current.value == token:
        yield StoreCall("delete_value", (policy.name,))


def api_call_flow(
    policy: TokenPolicy, request: ApiRequest, parse: Callable[[int, bytes], _T]
) -> Flow[_T]:
    """Make ``request`` with the shared access token.

    When WeChat refuses the token (40001, 40014, 42001: it expired early, or a fetch
    elsewhere replaced it), the token is dropped and the call made once more with a fresh
    one. A ``secure`` request of an app with API security keys is sealed
    (:func:`sealed_exchange`).
    """
    token = yield from access_token_flow(policy)
    try:
        return (yield from _exchange(policy, request, parse, token))
    except AccessTokenRejected as error:
        logger.info("access token: WeChat refused it (errcode %s); fetching another", error.errcode)
    yield from invalidate_flow(policy, token)
    token = yield from access_token_flow(policy, rejected=token)
    return (yield from _exchange(policy, request, parse, token))


def reset_session_key_flow(policy: TokenPolicy, session: WxSession) -> Flow[WxSession]:
    """Have WeChat issue ``session``'s user a new session_key; store it in all of the
    user's sessions (:meth:`~wxmiddleware.stores.base.SessionStore.set_session_key`);
    return ``session`` with it.

    A key WeChat no longer accepts raises :class:`~wxmiddleware.errors.InvalidSession`; a
    store that fails after WeChat answered raises
    :class:`~wxmiddleware.errors.StoreUnavailable`, each session keeping its old key.
    """
    request = reset_session_key_request(session)
    new_key = yield from api_call_flow(policy, request, parse_reset_session_key)
    scope = SessionScope.for_config(policy.config)
    yield StoreCall("set_session_key", (session.openid, new_key, time.time(), scope))
    return replace(session, session_key=new_key)
