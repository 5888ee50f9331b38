"""The decision core: every decision about a request, and no I/O.

One concept per private module, on the model of h11's layout:

- :mod:`._effects`: the effect vocabulary every flow yields (store calls, HTTP calls to
  WeChat, sleeps, the request body, the ``on_login`` hook);
- :mod:`._routing`: which kind of request this is (login, logout, public, optional,
  protected);
- :mod:`._apps`: which app a request is for, when several mini-programs are configured
  (its ``Referer``, then ``X-WX-Appid``);
- :mod:`._view`: the request view and the header names the core reads;
- :mod:`._request`: the token, the login code, the body limits;
- :mod:`._responses`: every answer the middleware gives itself, and the log line of a
  failed login, logout or lookup;
- :mod:`._wafer`: the dialect of Tencent's Wafer client SDK;
- :mod:`._cors`: CORS preflights and the ``cors_origins`` policy;
- :mod:`._upstream`: every call to WeChat, with the one retry rule;
- :mod:`._providers`: each mini-program platform's code exchange (WeChat, QQ, Douyin,
  Baidu, Kuaishou, Alipay) behind one interface, and its error codes mapped once;
- :mod:`._login`: the login flow (one code, one upstream call, one session);
- :mod:`._outcomes`: what a request comes to (forward, respond, drop) and the session
  lookup that decides most requests;
- :mod:`._endpoints`: the login and logout paths' flows;
- :mod:`._pipeline`: the request pipeline that ties them together.

Nothing here imports an I/O library (requests, aiohttp, sqlite3, redis): the adapters
(:mod:`wxmiddleware.wsgi`, :mod:`wxmiddleware.asgi`) build a :class:`RequestView`, run
:meth:`Pipeline.handle` with one of the two performers (:mod:`wxmiddleware._perform`) and
translate its :data:`Outcome`.
"""

from ._cors import Cors
from ._effects import (
    CallHook,
    ClientDisconnected,
    Effect,
    Flow,
    HttpCall,
    ReadBody,
    Sleep,
    StoreCall,
)
from ._login import PENDING_POLL_SECONDS, LoginResult, login_flow, new_session
from ._outcomes import DROP, Forward, Outcome, Plan, Respond, SessionLookup
from ._pipeline import Pipeline, resolve_config
from ._providers import PROVIDERS, LoginCode, Provider, exchange_code, refusal
from ._request import (
    MAX_CODE_LENGTH,
    body_length,
    check_login_method,
    check_logout_method,
    login_code_from_body,
    login_code_from_query,
    login_from_body,
    missing_token_error,
    pick_token,
)
from ._responses import (
    Response,
    error_response,
    head_response,
    json_response,
    log_failure,
    login_response,
    logout_response,
)
from ._routing import RequestKind, Router, login_methods
from ._upstream import exchange, jscode2session
from ._view import (
    WAFER_CODE_HEADER,
    WAFER_ENCRYPTED_DATA_HEADER,
    WAFER_IV_HEADER,
    HeaderMap,
    HeaderNames,
    RequestView,
)
from ._wafer import (
    WaferLogin,
    wafer_error,
    wafer_login,
    wafer_login_response,
    wafer_userinfo,
)

__all__ = [
    "DROP",
    "MAX_CODE_LENGTH",
    "PENDING_POLL_SECONDS",
    "WAFER_CODE_HEADER",
    "WAFER_ENCRYPTED_DATA_HEADER",
    "WAFER_IV_HEADER",
    "CallHook",
    "ClientDisconnected",
    "Cors",
    "Effect",
    "Flow",
    "Forward",
    "HeaderMap",
    "HeaderNames",
    "HttpCall",
    "LoginCode",
    "LoginResult",
    "Outcome",
    "Pipeline",
    "PROVIDERS",
    "Plan",
    "Provider",
    "ReadBody",
    "RequestKind",
    "RequestView",
    "Respond",
    "SessionLookup",
    "Response",
    "Router",
    "Sleep",
    "StoreCall",
    "WaferLogin",
    "body_length",
    "check_login_method",
    "check_logout_method",
    "error_response",
    "exchange",
    "exchange_code",
    "head_response",
    "jscode2session",
    "json_response",
    "log_failure",
    "login_code_from_body",
    "login_code_from_query",
    "login_from_body",
    "login_flow",
    "login_methods",
    "login_response",
    "logout_response",
    "missing_token_error",
    "new_session",
    "pick_token",
    "refusal",
    "resolve_config",
    "wafer_error",
    "wafer_login",
    "wafer_login_response",
    "wafer_userinfo",
]
