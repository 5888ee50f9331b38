"""The end-to-end login flow every example must pass over a real socket."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Dict, List

import requests

from wxmiddleware.testing import FakeWeChat

# (fault, parameters, expected status) for each upstream errcode and fault.
UPSTREAM_FAULTS: List[Any] = [
    ("errcode", {"errcode": -1}, 503),
    ("errcode", {"errcode": 40029}, 401),
    ("errcode", {"errcode": 40163}, 401),
    ("errcode", {"errcode": 45011}, 429),
    ("errcode", {"errcode": 40226}, 403),
    ("errcode", {"errcode": 40013}, 502),
    ("errcode", {"errcode": 40125}, 502),
    ("http_status", {"status": 500}, 502),
    ("html", {}, 502),
    ("truncated", {}, 502),
    ("slow", {"delay": 3}, 504),
]


class Client:
    """A requests session against one server, remembering everything it was answered."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.answers: List[str] = []

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 15)
        response = self.http.request(method, self.url + path, **kwargs)
        self.answers.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    def login(self, code: str) -> requests.Response:
        return self.call("POST", "/wx/login", json={"code": code})

    def me(self, token: str, header: str = "3rd-session") -> requests.Response:
        return self.call("GET", "/api/me", headers={header: token})


def assert_json_error(response: requests.Response, status: int) -> Dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: Dict[str, Any] = response.json()
    assert body["error"] and body["message"]
    return body


def run_flow(client: Client, fake: FakeWeChat, requests_per_token: int = 20) -> Dict[str, Any]:
    """Drive the whole contract; return the tokens it made, for leak checks."""
    openid = fake.openid_for("alice")
    assert client.call("GET", "/health").json() == {"ok": True}

    login = client.login(fake.issue_code("alice"))
    assert login.status_code == 200, login.text
    body = login.json()
    token = body["3rd_session"]
    assert len(token) >= 43 and body["expires_in"] > 0
    assert "session_key" not in login.text

    for _ in range(requests_per_token):
        me = client.me(token)
        assert me.status_code == 200, me.text
        assert me.json() == {"openid": openid, "unionid": fake.unionid_for("alice")}

    assert_json_error(client.call("GET", "/api/me"), 401)
    assert_json_error(client.me("A" * 43), 401)
    assert_json_error(client.me(token[:-3]), 401)
    assert client.me(token, header="X-WX-Skey").status_code == 200

    # A Wafer client: GET with the code in X-WX-Code, then the skey in X-WX-Skey; an unknown
    # skey answers Wafer's "code": -1, which makes the client log in again.
    wafer = client.call("GET", "/wx/login", headers={"X-WX-Code": fake.issue_code("alice")})
    assert wafer.status_code == 200 and wafer.json()["code"] == 0, wafer.text
    assert client.me(wafer.json()["data"]["skey"], header="X-WX-Skey").json()["openid"] == openid
    assert assert_json_error(client.me("A" * 43, header="X-WX-Skey"), 401)["code"] == -1

    # A client retry of the same code gets the same session, without a second upstream call.
    code = fake.issue_code("alice")
    calls = fake.jscode2session_calls
    retried = [client.login(code).json()["3rd_session"] for _ in range(2)]
    assert retried[0] == retried[1]
    assert fake.jscode2session_calls == calls + 1

    # Logout ends one session and leaves the user's others.
    assert client.call("POST", "/wx/logout", headers={"3rd-session": token}).status_code == 204
    assert_json_error(client.me(token), 401)
    assert client.me(retried[0]).json()["openid"] == openid

    for fault, params, status in UPSTREAM_FAULTS:
        fake.inject(fault, count=2, **params)
        failed = client.login(fake.issue_code("bob"))
        assert_json_error(failed, status)
        fake.reset()
    return {"tokens": [token, retried[0]]}


def assert_no_leak(texts: List[str], fake: FakeWeChat, secrets: List[str]) -> None:
    """No answer or log line holds the app secret, the upstream query or a session secret."""
    joined = "\n".join(texts)
    assert fake.secret not in joined
    assert "js_code=" not in joined
    for value in secrets:
        assert value not in joined


def issued_session_keys(fake: FakeWeChat, state: Path) -> List[str]:
    """The session_keys WeChat holds for the flow's users (``run_flow`` logs in alice; bob's
    logins fail), after checking the SQLite stores under ``state`` hold sessions at all."""
    rows = 0
    for path in state.rglob("*.sqlite3"):
        with sqlite3.connect(path) as db:
            rows += db.execute("SELECT count(*) FROM wx_sessions").fetchone()[0]
    assert rows, f"no session stored under {state}"
    return [key for key in (fake.session_key_for(user) for user in ("alice", "bob")) if key]


def store_bytes(state: Path) -> bytes:
    """Every byte of every file under ``state``: the database, its WAL and shared memory."""
    return b"".join(path.read_bytes() for path in state.rglob("*") if path.is_file())
