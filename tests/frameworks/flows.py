"""The checks every framework test makes, for clients with a WebTest-like or Flask-like API."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping

from wxmiddleware.testing import FakeWeChat

# (method, path, json body or None, headers) -> (status, json body or None)
Call = Callable[[str, str, Any, Mapping[str, str]], "tuple[int, Any]"]


def check_contract(call: Call, fake: FakeWeChat) -> None:
    status, body = call("GET", "/health", None, {})
    assert (status, body) == (200, {"ok": True})

    status, body = call("GET", "/api/me", None, {})
    assert status == 401 and body["error"] == "invalid_session"

    status, body = call("POST", "/wx/login", {"code": fake.issue_code("alice")}, {})
    assert status == 200, body
    token = body["3rd_session"]
    expected: Dict[str, Any] = {
        "openid": fake.openid_for("alice"),
        "unionid": fake.unionid_for("alice"),
    }
    for header in ("3rd-session", "X-WX-Skey"):
        status, body = call("GET", "/api/me", None, {header: token})
        assert (status, body) == (200, expected)

    status, _ = call("POST", "/wx/logout", None, {"3rd-session": token})
    assert status == 204
    status, body = call("GET", "/api/me", None, {"3rd-session": token})
    assert status == 401 and body["error"] == "invalid_session"
