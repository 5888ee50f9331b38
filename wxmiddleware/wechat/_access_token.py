"""The app's access token (OpenApiDoc "mp-access-token"), shared by every process and machine
of the app through the session store (``set_value``): its request (``/cgi-bin/stable_token``
or ``/cgi-bin/token``) and reply, the record the store keeps, and the flows that read,
refresh and drop it under the store's lock.

``/cgi-bin/token`` invalidates the previous token five minutes after issuing a new one, so
processes that each kept their own would knock each other's out.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Optional

from ..config import WxConfig
from ..core._effects import Flow, Sleep, StoreCall
from ..core._upstream import exchange
from ..errors import UpstreamError, UpstreamTimeout
from ._api_replies import parse_reply
from ._paths import STABLE_TOKEN_PATH, TOKEN_PATH
from ._protocol import MAX_ATTEMPTS, RETRY_BACKOFF_SECONDS, ApiRequest

logger = logging.getLogger("wxmiddleware")

#: Refresh this many seconds before the token expires: WeChat's stable_token hands out the
#: next token in the last five minutes, while the old one stays valid until its expiry.
REFRESH_MARGIN_SECONDS = 300.0
#: A token closer than this to its expiry could expire while a call carries it.
EXPIRY_GUARD_SECONDS = 60.0
#: How often a process that waits for another one's refresh looks at the store again.
LOCK_POLL_SECONDS = 0.05


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
