"""Checks every integration's tests make."""

from __future__ import annotations

import socket
from typing import Any, Mapping


def down_store_url() -> str:
    """A Redis URL where nothing listens: every store call fails, as with a server down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def assert_refused(status: int, headers: Mapping[str, str], body: Any, expected: int = 401) -> None:
    """The middleware's own answer: JSON ``{"error", "message"}``, ``WWW-Authenticate`` on a
    ``401``; never an HTML page, a redirect or a 500."""
    assert status == expected, (status, body)
    lowered = {name.lower(): value for name, value in headers.items()}
    assert lowered["content-type"].startswith("application/json"), lowered
    assert isinstance(body, dict) and body["error"] and body["message"], body
    if expected == 401:
        assert body["error"] == "invalid_session"
        assert lowered["www-authenticate"].startswith("WxSession")
    else:
        assert body["error"] == "store_unavailable"
