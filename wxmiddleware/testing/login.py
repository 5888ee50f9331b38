"""Log a test user in through the app under test, with whichever test client the app uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import FakeWeChat

__all__ = ["LoginFailed", "log_in", "log_in_async"]


class LoginFailed(AssertionError):
    """A test login through the app did not answer 200 with a token."""


def log_in(client: Any, fake: FakeWeChat, user: str = "alice", path: str = "/wx/login") -> str:
    """Log ``user`` in through the app under test and return the session token.

    ``client`` is a WebTest ``TestApp``, a Flask test client, an ``httpx.Client`` or a
    Starlette ``TestClient`` in front of an app wrapped by the middleware, which must be
    pointed at ``fake``. Send the token back as the ``3rd-session`` header.
    """
    return _token_from(_post_login(client, path, fake.issue_code(user)))


async def log_in_async(
    client: Any, fake: FakeWeChat, user: str = "alice", path: str = "/wx/login"
) -> str:
    """:func:`log_in` for an ``httpx.AsyncClient``."""
    response = await client.post(path, json={"code": fake.issue_code(user)})
    return _token_from(response)


def _post_login(client: Any, path: str, code: str) -> Any:
    # WebTest's TestApp has post_json; Flask's test client, httpx and Starlette's TestClient
    # all take json= on post().
    post_json = getattr(client, "post_json", None)
    if post_json is not None:
        return post_json(path, {"code": code}, expect_errors=True)
    return client.post(path, json={"code": code})


def _token_from(response: Any) -> str:
    status = getattr(response, "status_code", None) or getattr(response, "status_int", None)
    payload = response.json
    if callable(payload):  # httpx and Starlette: a method; WebTest and Flask: a property
        payload = payload()
    if status != 200 or not isinstance(payload, dict) or "3rd_session" not in payload:
        raise LoginFailed(f"the test login answered {status}: {payload!r}")
    token: str = payload["3rd_session"]
    return token
