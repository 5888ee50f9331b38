"""Load an example app wired to the fake WeChat, fresh for each test."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

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
