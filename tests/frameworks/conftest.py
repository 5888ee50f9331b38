"""Load an example app wired to the fake WeChat, fresh for each test."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest

from wxmiddleware.testing import FakeWeChat

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def load_example(
    fake_wechat_env: FakeWeChat, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], ModuleType]:
    monkeypatch.setenv("WX_SESSION_STORE", "memory://")
    monkeypatch.syspath_prepend(str(ROOT))

    def load(name: str) -> ModuleType:
        module_name = f"examples.{name}"
        sys.modules.pop(module_name, None)
        return importlib.import_module(module_name)

    return load


@pytest.fixture
def example(
    request: pytest.FixtureRequest,
    load_example: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
) -> ModuleType:
    """The example named by the test module's ``EXAMPLE``, with ``/feed`` an optional path."""
    monkeypatch.setenv("WX_OPTIONAL_PATHS", "/feed")
    return load_example(request.module.EXAMPLE)


@pytest.fixture
def client(example: ModuleType) -> Iterator[Any]:
    """A Starlette ``TestClient`` (lifespan running) on ``example.app``."""
    from starlette.testclient import TestClient

    with TestClient(example.app) as client:
        yield client
