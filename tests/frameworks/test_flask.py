"""The Flask example through Flask's own test client."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Mapping, Tuple

import pytest

from wxmiddleware.testing import FakeWeChat

from ..wafer_support import pin_session_key
from .flows import check_contract, check_wafer

pytest.importorskip("flask")


def test_flask_example(load_example: Callable[[str], ModuleType], fake_wechat: FakeWeChat) -> None:
    client = load_example("flask_app").app.test_client()

    def call(method: str, path: str, body: Any, headers: Mapping[str, str]) -> Tuple[int, Any]:
        response = client.open(path, method=method, json=body, headers=dict(headers))
        return response.status_code, response.get_json(silent=True)

    check_contract(call, fake_wechat)


def test_wafer_client_on_the_flask_example(
    load_example: Callable[[str], ModuleType],
    fake_wechat: FakeWeChat,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("cryptography")
    session_key = pin_session_key(monkeypatch)
    client = load_example("flask_app").app.test_client()

    def call(method: str, path: str, body: Any, headers: Mapping[str, str]) -> Tuple[int, Any]:
        response = client.open(path, method=method, json=body, headers=dict(headers))
        return response.status_code, response.get_json(silent=True)

    check_wafer(call, fake_wechat, session_key)


def test_remote_user_reaches_flask(
    load_example: Callable[[str], ModuleType], fake_wechat: FakeWeChat
) -> None:
    module = load_example("flask_app")
    flask_app = module.flask_app

    @flask_app.get("/whoami")
    def whoami() -> Any:
        from flask import request

        return {"remote_user": request.remote_user}

    client = flask_app.test_client()
    token = client.post("/wx/login", json={"code": fake_wechat.issue_code("bob")}).get_json()
    answer = client.get("/whoami", headers={"3rd-session": token["3rd_session"]}).get_json()
    assert answer == {"remote_user": fake_wechat.openid_for("bob")}


def test_the_flask_example_serves_metrics(
    load_example: Callable[[str], ModuleType], fake_wechat: FakeWeChat
) -> None:
    pytest.importorskip("prometheus_client")
    client = load_example("flask_app").app.test_client()
    token = client.post("/wx/login", json={"code": fake_wechat.issue_code()}).get_json()[
        "3rd_session"
    ]
    assert client.get("/api/me", headers={"3rd-session": token}).status_code == 200
    metrics = client.get("/metrics")  # public: no token
    assert metrics.status_code == 200
    text = metrics.get_data(as_text=True)
    assert "wxmiddleware_logins_total" in text and token not in text
