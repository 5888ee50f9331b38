"""A fake WeChat API server on loopback, for tests and local development.

WeChat's servers cannot be reached from a test run, and patching the HTTP client hides exactly
the bugs that matter (URL encoding, timeouts, bodies that are not JSON). ``FakeWeChat`` is a real
HTTP server on ``127.0.0.1`` that answers ``GET /sns/jscode2session`` the way WeChat does:
HTTP 200 with ``text/plain`` JSON, failures as an ``errcode`` in the body, single-use codes that
expire after five minutes, and a per-user minute quota. It also serves the server APIs an app
calls itself: access tokens (``/cgi-bin/token``, ``/cgi-bin/stable_token``),
``/wxa/checksession`` and ``/wxa/business/getuserphonenumber``. Point the middleware's API base
at ``fake.url``::

    from wxmiddleware.testing import FakeWeChat

    with FakeWeChat() as fake:
        app = WxMiddleware(inner_app, appid=fake.appid, secret=fake.secret, api_base=fake.url)
        code = fake.issue_code("alice")          # what wx.login() would give the mini-program
        ...                                      # POST it to the login path
        assert fake.jscode2session_calls == 1

Failures are injected one per jscode2session request (or per request to ``path``), first in
first out::

    fake.inject("errcode", errcode=-1)           # "system busy" once, then normal answers
    fake.inject("slow", delay=10)                # longer than any sane read timeout
    fake.inject("close", count=2)                # the connection drops, twice
    fake.inject("errcode", errcode=-1, path=PHONE_NUMBER_PATH)

Access tokens and phone numbers::

    code = fake.issue_phone_code("alice", phone="13800138000")   # getPhoneNumber's code
    fake.expire_access_tokens()                  # calls with them now answer 42001
    assert fake.token_calls == 1                 # /cgi-bin/token and /cgi-bin/stable_token

With pytest, the ``fake_wechat`` and ``fake_wechat_env`` fixtures (``wxmiddleware.pytest_plugin``)
give each test a started server. For an environment that cannot call Python (a team's
integration setup, a Node test), run ``python -m wxmiddleware.testing --port 8601`` and use the
control endpoints: ``GET /fake/code?user=alice``, ``GET /fake/phone_code?user=alice&phone=…``,
``POST /fake/fault`` (JSON body ``{"fault": "errcode", "count": 1, "errcode": -1}``, optionally
with ``"path"``), ``POST /fake/expire_access_tokens``, ``GET /fake/calls``, ``POST /fake/reset``.

The package's modules, one job each: :mod:`.model` (how WeChat answers, and its state; no
sockets), :mod:`.faults` (what each injected fault sends), :mod:`.server` (``FakeWeChat``, the
model on a loopback port), :mod:`.control` (the ``/fake/...`` endpoints), :mod:`.login` (the
login helpers) and :mod:`.cli` (the command line). It uses the standard library only, and takes
the API paths from :mod:`wxmiddleware.wechat._paths`, where the package's WeChat clients take them.
"""

from __future__ import annotations

from ..wechat._paths import (
    CHECK_SESSION_PATH,
    JSCODE2SESSION_PATH,
    PHONE_NUMBER_PATH,
    STABLE_TOKEN_PATH,
    TOKEN_PATH,
)
from ._requests import RecordedCall
from .cli import main
from .faults import FAULTS
from .login import LoginFailed, log_in, log_in_async
from .server import FakeWeChat

__all__ = [
    "CHECK_SESSION_PATH",
    "FAULTS",
    "JSCODE2SESSION_PATH",
    "PHONE_NUMBER_PATH",
    "STABLE_TOKEN_PATH",
    "TOKEN_PATH",
    "FakeWeChat",
    "LoginFailed",
    "RecordedCall",
    "log_in",
    "log_in_async",
    "main",
]
