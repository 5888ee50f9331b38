"""WeChat's server API calls without I/O: a call with the shared access token, plain or sealed.

The server APIs are request builders and reply parsers, grouped as WeChat's documentation
groups them: :mod:`._api_replies` (any reply, its errcode mapped to an error),
:mod:`._api_login` (checksession, resetusersessionkey), :mod:`._api_user_info` (encryption
keys, phone numbers, encrypted data checks, plugin openpids) and :mod:`._access_token` (the
token itself, shared through the store). The decisions around them are written once as
flows: generators that yield the package's effects (:mod:`wxmiddleware.core._effects`: store
calls for the shared value and its lock, HTTP calls, sleeps) like the login flow does. The
sync and async performers of :mod:`wxmiddleware._perform` carry them out.

This module holds the flows of one call: :func:`api_call_flow` (the shared token, and a
fresh one once when WeChat refuses it) and :func:`reset_session_key_flow`. A call WeChat's
API security covers (``ApiRequest.secure``) is sealed when the configuration holds API
security keys: :func:`sealed_exchange`, on :mod:`wxmiddleware.wechat._security`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Callable, Tuple, TypeVar

from ..config import WxConfig
from ..core._effects import Flow, HttpCall, StoreCall
from ..core._upstream import exchange, retrying
from ..session import SessionScope, WxSession
from ._access_token import TokenPolicy, access_token_flow, invalidate_flow
from ._api_login import parse_reset_session_key, reset_session_key_request
from ._api_replies import AccessTokenRejected, api_error
from ._protocol import ApiRequest, reply_errcode, reply_object
from ._security import ANSWER_HEADERS, ApiSecurity, ApiSecurityError, Sealed, answer_is_signed

logger = logging.getLogger("wxmiddleware")

_T = TypeVar("_T")


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

    def attempt() -> Flow[_T]:
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

    return (yield from retrying(attempt))


def _exchange(
    policy: TokenPolicy, request: ApiRequest, parse: Callable[[int, bytes], _T], token: str
) -> Flow[_T]:
    """One call with ``token``: sealed when ``request`` is ``secure`` and the app has API
    security keys, else plain."""
    security = policy.config.api_security if request.secure else None
    if security is not None:
        return sealed_exchange(policy.config, security, request, parse, token)
    return exchange(policy.config, request, parse, token)


# --- calls with the shared access token ---


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
