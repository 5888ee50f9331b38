"""The fake WeChat's control endpoints, for a test that drives it over HTTP instead of Python.

``GET /fake/code?user=alice`` (a login code; ``&appid=wx…`` for another app the fake serves),
``GET /fake/phone_code?user=alice&phone=…``,
``POST /fake/fault`` (JSON ``{"fault": "errcode", "count": 1, "errcode": -1}``, optionally with
``"path"``), ``POST /fake/expire_access_tokens``, ``GET /fake/calls`` (the jscode2session
count) and ``POST /fake/reset``. Each answers JSON; they are not recorded as calls.
"""

from __future__ import annotations

import json
from typing import Tuple
from urllib.parse import parse_qsl

from ..wechat._paths import JSCODE2SESSION_PATH
from ._requests import RecordedCall
from .model import WeChatModel

CONTROL_PREFIX = "/fake/"
"""Requests under this path prefix control the fake instead of calling an API."""


def control_answer(model: WeChatModel, call: RecordedCall) -> Tuple[int, object]:
    """Carry out a control request on ``model``: ``(HTTP status, JSON value to answer)``."""
    # Blank parameters count as absent here, so ``?user=`` means the default user.
    params = dict(parse_qsl(call.raw_query))
    if (call.method, call.path) == ("GET", "/fake/code"):
        appid = params.get("appid", model.appid)
        if not model.serves(appid):
            return 400, {"ok": False, "error": f"this fake serves no app {appid!r}"}
        return 200, {"code": model.issue_code(params.get("user", "alice"), appid=appid)}
    if (call.method, call.path) == ("GET", "/fake/phone_code"):
        code = model.issue_phone_code(
            params.get("user", "alice"), params.get("phone", "13800138000")
        )
        return 200, {"code": code}
    if (call.method, call.path) == ("POST", "/fake/expire_access_tokens"):
        model.expire_access_tokens()
        return 200, {"ok": True}
    if (call.method, call.path) == ("POST", "/fake/fault"):
        try:
            spec = json.loads(call.body)
            if not isinstance(spec, dict) or not isinstance(spec.get("fault"), str):
                raise ValueError('expected a JSON object with a "fault" name')
            kind, count = spec.pop("fault"), spec.pop("count", 1)
            path = spec.pop("path", JSCODE2SESSION_PATH)
            model.inject(kind, count, path=path, **spec)
        except (TypeError, ValueError) as exc:  # a bad JSON body, fault or parameter name
            return 400, {"ok": False, "error": str(exc)}
        return 200, {"ok": True}
    if (call.method, call.path) == ("GET", "/fake/calls"):
        return 200, {"jscode2session": model.jscode2session_calls}
    if (call.method, call.path) == ("POST", "/fake/reset"):
        model.reset()
        return 200, {"ok": True}
    return 404, {"errcode": 40066, "errmsg": "invalid url"}
