"""The operations suite reuses the behaviour suite's drivers: each test runs per adapter."""

from __future__ import annotations

from ..middleware.conftest import adapter, app, make_app

__all__ = ["adapter", "app", "make_app"]
