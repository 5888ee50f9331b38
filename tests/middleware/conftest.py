"""The behaviour suite runs every test once per adapter: ``[wsgi]`` and ``[asgi]``."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from wxmiddleware.testing import FakeWeChat

from .drivers import Driver, driver_factory
from .stubs import ASGI, WSGI


@pytest.fixture(params=[WSGI, ASGI])
def adapter(request: pytest.FixtureRequest) -> str:
    if request.param == ASGI:
        pytest.importorskip("httpx")
    return str(request.param)


@pytest.fixture
def make_app(adapter: str, fake_wechat: FakeWeChat) -> Iterator[Callable[..., Driver]]:
    """``make_app(store=None, config=None, **options)``: a driver for a freshly wrapped app."""
    with driver_factory(adapter, fake_wechat) as make:
        yield make


@pytest.fixture
def app(make_app: Callable[..., Driver]) -> Driver:
    """The wrapped app with the default test config and a memory store."""
    return make_app()
