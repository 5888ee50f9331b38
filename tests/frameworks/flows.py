"""The checks every framework test makes, for clients with a WebTest-like or Flask-like API."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Mapping, Tuple

from wxmiddleware.testing import FakeWeChat

from ..wafer_support import USER_INFO, user_info_for, wafer_headers

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


def check_wafer(call: Call, fake: FakeWeChat, session_key: str) -> None:
    """A Wafer client's flow: log in with X-WX-Code, with and without user info, use X-WX-Skey.

    ``session_key`` is the one the fake WeChat gives every login (``pin_session_key``).
    """
    status, body = call("GET", "/wx/login", None, wafer_headers(fake.issue_code("alice")))
    assert status == 200, body
    alice = {"openid": fake.openid_for("alice"), "unionid": fake.unionid_for("alice")}
    assert body["code"] == 0
    assert body["data"]["userinfo"] == {"openId": alice["openid"], "unionId": alice["unionid"]}
    assert call("GET", "/api/me", None, {"X-WX-Skey": body["data"]["skey"]}) == (200, alice)

    encrypted = user_info_for(session_key, fake.appid)
    status, body = call("GET", "/wx/login", None, wafer_headers(fake.issue_code("bob"), encrypted))
    assert status == 200, body
    bob = {"openid": fake.openid_for("bob"), "unionid": fake.unionid_for("bob")}
    assert body["data"]["userinfo"] == {
        **USER_INFO,
        "openId": bob["openid"],
        "unionId": bob["unionid"],
    }
    skey = body["data"]["skey"]
    assert call("GET", "/api/me", None, {"X-WX-Skey": skey}) == (200, bob)

    # After the session ends, the client sees "code": -1 and logs in again.
    assert call("POST", "/wx/logout", None, {"X-WX-Skey": skey})[0] == 204
    status, body = call("GET", "/api/me", None, {"X-WX-Skey": skey})
    assert status == 401 and (body["code"], body["error"]) == (-1, "invalid_session")


# Starlette's TestClient (Starlette and FastAPI apps, and the bare ASGI middleware)


def starlette_call(client: Any) -> Call:
    """A :data:`Call` through a Starlette ``TestClient``."""

    def call(method: str, path: str, body: Any, headers: Mapping[str, str]) -> Tuple[int, Any]:
        response = client.request(method, path, json=body, headers=dict(headers))
        return response.status_code, response.json() if response.content else None

    return call


def starlette_log_in(client: Any, fake: FakeWeChat, user: str = "alice") -> str:
    """Log ``user`` in through a Starlette ``TestClient``; the token."""
    response = client.post("/wx/login", json={"code": fake.issue_code(user)})
    assert response.status_code == 200, response.text
    token: str = response.json()["3rd_session"]
    return token


def check_websocket_refused(
    client: Any, header_sets: Iterable[Mapping[str, str]], code: int = 4401
) -> None:
    """Each websocket connection to ``/ws`` with these headers is closed with ``code``."""
    import pytest
    from starlette.websockets import WebSocketDisconnect

    for headers in header_sets:
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect("/ws", headers=dict(headers)),
        ):
            pass
        assert refused.value.code == code


def check_websocket_echo(client: Any, fake: FakeWeChat, header: str, text: str) -> None:
    """After a login, a websocket to ``/ws`` with the token in ``header`` echoes ``text``."""
    token = starlette_log_in(client, fake)
    with client.websocket_connect("/ws", headers={header: token}) as websocket:
        websocket.send_text(text)
        assert websocket.receive_text() == text
