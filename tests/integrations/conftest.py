"""Fixtures of the framework integrations' tests: the example loader of tests/frameworks."""

from __future__ import annotations

from ..frameworks.conftest import ROOT, load_example

__all__ = ["ROOT", "load_example"]
