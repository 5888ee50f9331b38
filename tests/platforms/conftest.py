"""The platform suites run every test once per adapter (``[wsgi]``, ``[asgi]``) and, where
sessions are kept, over every store (memory, SQLite, Redis): the middleware suite's
fixtures."""

from tests.middleware.conftest import adapter, app, make_app
from tests.middleware.test_session_keys import store

__all__ = ["adapter", "app", "make_app", "store"]
