"""The Django example in both modes: WSGI through WebTest, ASGI through httpx."""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any, Callable, Mapping, Tuple

import pytest
from webtest import TestApp

from wxmiddleware.testing import FakeWeChat

from .flows import check_contract

pytest.importorskip("django")


def test_django_wsgi(load_example: Callable[[str], ModuleType], fake_wechat: FakeWeChat) -> None:
    client = TestApp(load_example("django_app").app)

    def call(method: str, path: str, body: Any, headers: Mapping[str, str]) -> Tuple[int, Any]:
        if body is not None:
            response = client.post_json(path, body, headers=dict(headers), expect_errors=True)
        else:
            response = client.request(
                path, method=method, headers=dict(headers), expect_errors=True
            )
        return response.status_int, response.json if response.body else None

    check_contract(call, fake_wechat)


def test_django_asgi(load_example: Callable[[str], ModuleType], fake_wechat: FakeWeChat) -> None:
    httpx = pytest.importorskip("httpx")
    asgi_app = load_example("django_app").asgi

    async def run() -> None:
        transport = httpx.ASGITransport(app=asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            loop = asyncio.get_running_loop()

            async def request(method: str, path: str, body: Any, headers: Mapping[str, str]) -> Any:
                response = await client.request(method, path, json=body, headers=dict(headers))
                return response.status_code, response.json() if response.content else None

            def call(method: str, path: str, body: Any, headers: Mapping[str, str]) -> Any:
                # check_contract is synchronous: it runs in a thread and waits on the loop.
                future = asyncio.run_coroutine_threadsafe(
                    request(method, path, body, headers), loop
                )
                return future.result(timeout=30)

            await loop.run_in_executor(None, check_contract, call, fake_wechat)

            # Django's ASGI request ignores underscore headers; the middleware reads them first.
            login = await client.post("/wx/login", json={"code": fake_wechat.issue_code("eve")})
            token = login.json()["3rd_session"]
            me = await client.get("/api/me", headers={"3rd_session": token})
            assert me.json()["openid"] == fake_wechat.openid_for("eve")

    asyncio.run(run())
