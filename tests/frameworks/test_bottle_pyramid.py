"""The Bottle and Pyramid examples through WebTest."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Mapping, Tuple

import pytest
from webtest import TestApp

from wxmiddleware.testing import FakeWeChat

from .flows import check_contract


@pytest.mark.parametrize("framework", ["bottle", "pyramid"])
def test_example(
    framework: str, load_example: Callable[[str], ModuleType], fake_wechat: FakeWeChat
) -> None:
    pytest.importorskip(framework)
    client = TestApp(load_example(f"{framework}_app").app)

    def call(method: str, path: str, body: Any, headers: Mapping[str, str]) -> Tuple[int, Any]:
        if body is not None:
            response = client.post_json(path, body, headers=dict(headers), expect_errors=True)
        else:
            response = client.request(
                path, method=method, headers=dict(headers), expect_errors=True
            )
        return response.status_int, response.json if response.body else None

    check_contract(call, fake_wechat)
