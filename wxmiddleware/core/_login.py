"""The login flow: one code exchanged once for one session, however often it is sent."""

from __future__ import annotations

import time
from typing import NamedTuple, Optional

from ..config import WxConfig
from ..errors import InvalidCode, UpstreamTimeout
from ..session import (
    ClaimState,
    SessionScope,
    WxSession,
    absolute_expiry,
    code_key,
    new_token,
    seal_token,
    unseal_token,
)
from ..wechat._protocol import CodeSession
from ._effects import Flow, Sleep, StoreCall
from ._providers import LoginCode, exchange_code

#: How often a login waiting on a concurrent login with the same code looks again, in seconds.
PENDING_POLL_SECONDS = 0.025


class LoginResult(NamedTuple):
    """A login's result: the session's token, the session, and who made it."""

    token: str
    session: WxSession
    #: This login made the session; ``False`` when an earlier login with the same code did
    #: and this one is its retry.
    fresh: bool


def new_session(reply: CodeSession, config: WxConfig, now: Optional[float] = None) -> WxSession:
    """The session record for a fresh code exchange's reply, in the app and platform of
    ``config``; it ends ``session_max_age`` seconds from ``now`` at the latest."""
    now = time.time() if now is None else now
    return WxSession(
        openid=reply.openid,
        session_key=reply.session_key,
        unionid=reply.unionid,
        created_at=now,
        expires_at=absolute_expiry(now, config.session_max_age),
        appid=config.appid,
        platform=config.platform,
    )


def login_flow(
    code: str, config: WxConfig, replayable: bool = True, anonymous_code: Optional[str] = None
) -> Flow[LoginResult]:
    """Log in with ``code``; return its :class:`LoginResult`.

    The same code sent again within its lifetime (a client retry, possibly to another worker)
    yields the same session; concurrent duplicates wait for the first one instead of calling
    WeChat again. The store remembers the code only as :func:`code_key` plus the token
    sealed under the code. A code that is not ``replayable`` (one that came in a URL, and so
    sits in access logs for anyone who reads them) is neither remembered nor looked up: it
    goes to WeChat each time, which refuses it after its first use, so a second use is
    ``invalid_code``. Errors are raised as :class:`~wxmiddleware.errors.WxError`.

    The code goes to the exchange of the app's platform (:mod:`._providers`), with Douyin's
    ``anonymous_code`` when the client sent one.
    """
    key = None
    if replayable:
        key = code_key(code)
        earlier = yield from _claim(code, key, config)
        if earlier is not None:
            return earlier
    try:
        reply = yield from exchange_code(config, LoginCode(code, anonymous_code))
    except GeneratorExit:
        raise
    except BaseException:  # a cancelled request (asyncio) must release its claim too
        if key is not None:
            yield StoreCall("release_code", (key,))
        raise
    token = new_token()
    session = new_session(reply, config)
    sealed = None if key is None else seal_token(code, token)
    # The store puts the new key into the user's other sessions and applies the cap.
    scope = SessionScope.for_config(config)
    yield StoreCall("save", (token, session, config.session_ttl, scope, key, sealed))
    return LoginResult(token, session, True)


def _claim(code: str, key: str, config: WxConfig) -> Flow[Optional[LoginResult]]:
    """Claim ``code`` for this login (``None``), or find the session an earlier login with
    it made; wait while another login holds it."""
    # A duplicate waits as long as the first login may take: two attempts and a backoff.
    deadline = time.monotonic() + 2 * (config.connect_timeout + config.read_timeout) + 1
    while True:
        claim = yield StoreCall("claim_code", (key, config.code_ttl))
        if claim.state is ClaimState.OWNER:
            return None
        if claim.state is ClaimState.PENDING:
            if time.monotonic() >= deadline:
                raise UpstreamTimeout("A login with this code is still in progress.")
            yield Sleep(PENDING_POLL_SECONDS)
            continue
        token = unseal_token(code, claim.sealed_token or "")
        session = None
        if token is not None:
            scope = SessionScope.for_config(config)
            session = yield StoreCall("get", (token, config.session_ttl, scope))
        if token is None or session is None:
            raise InvalidCode("This login code was already used; call wx.login() again.")
        return LoginResult(token, session, False)
