"""FastAPI: security dependencies for the WeChat session, and the login path in the schema.

https://fastapi.tiangolo.com/tutorial/security/ and
https://fastapi.tiangolo.com/reference/security/#fastapi.security.APIKeyHeader

.. code-block:: python

    config = WxConfig.from_env(public_paths=PUBLIC_PATHS)
    app = FastAPI()
    app.add_middleware(WxASGIMiddleware, config=config)
    install(app, config)   # the login and logout paths in /openapi.json, the exact 401

    @app.get("/api/me")
    async def me(session: CurrentWxSession):          # or OptionalWxSession
        return {"openid": session.openid}

The dependencies are ``APIKeyHeader`` schemes for the ``3rd-session`` header: the OpenAPI
schema declares them, and the Authorize button of ``/docs`` sends the header. The middleware
resolves the token; the dependencies read the session it attached.
"""

# No `from __future__ import annotations`: FastAPI 0.100 reads a dependency's
# __call__ annotations as objects (an instance has no __globals__ to resolve strings in).
import json
from typing import Annotated, Any, Dict, Optional

from fastapi import FastAPI, Request, Security
from fastapi.exceptions import HTTPException
from fastapi.responses import Response
from fastapi.security import APIKeyHeader

from .._accessors import session_of
from ..config import WxConfig
from ..core import MAX_CODE_LENGTH
from ..session import WxSession
from . import unauthorized

__all__ = [
    "CurrentWxSession",
    "OptionalWxSession",
    "WxSessionHeader",
    "WxSessionMissing",
    "WxSessionRequired",
    "install",
    "wx_session",
    "wx_session_optional",
]

#: The security scheme's name in the OpenAPI schema.
SCHEME_NAME = "wxSession"
_DESCRIPTION = "The 3rd_session token that the login path answered."


class WxSessionMissing(HTTPException):
    """A route needs a session and the request has none: ``401`` with the middleware's
    ``WWW-Authenticate``. FastAPI's own handler answers ``{"detail": message}``;
    :func:`install` answers the middleware's JSON instead."""

    def __init__(self) -> None:
        answer = unauthorized()
        super().__init__(
            answer.status,
            detail=json.loads(answer.body)["message"],
            headers={"WWW-Authenticate": dict(answer.headers)["WWW-Authenticate"]},
        )


class WxSessionHeader(APIKeyHeader):
    """The session of a request, or ``None``: an ``APIKeyHeader`` scheme named
    ``wxSession`` for the ``name`` header (``3rd-session``), so the schema declares it.

    It reads the session :class:`~wxmiddleware.WxASGIMiddleware` attached rather than the
    header (the middleware resolved the token, and refused a bad one outside
    ``optional_paths``): ``None`` on an optional path without a valid token.
    """

    def __init__(self, *, name: str = "3rd-session", description: str = _DESCRIPTION) -> None:
        super().__init__(
            name=name, scheme_name=SCHEME_NAME, description=description, auto_error=False
        )

    async def __call__(self, request: Request) -> Optional[WxSession]:  # type: ignore[override]
        """The attached :class:`~wxmiddleware.WxSession`, or ``None``."""
        return session_of(request)


class WxSessionRequired(WxSessionHeader):
    """:class:`WxSessionHeader` that refuses a request without a session
    (:class:`WxSessionMissing`, ``401``)."""

    async def __call__(self, request: Request) -> WxSession:  # type: ignore[override]
        """The attached :class:`~wxmiddleware.WxSession`; raises :class:`WxSessionMissing`."""
        session = session_of(request)
        if session is None:
            raise WxSessionMissing()
        return session


#: Dependencies for the ``3rd-session`` header: ``Security(wx_session)``.
wx_session = WxSessionRequired()
wx_session_optional = WxSessionHeader()
#: ``session: CurrentWxSession`` in a route's parameters: the session, or ``401``.
CurrentWxSession = Annotated[WxSession, Security(wx_session)]
#: ``session: OptionalWxSession``: the session, or ``None`` (on an optional path).
OptionalWxSession = Annotated[Optional[WxSession], Security(wx_session_optional)]


async def _refuse(request: Request, exc: Exception) -> Response:
    answer = unauthorized()
    return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))


def install(app: FastAPI, config: WxConfig) -> None:
    """Answer :class:`WxSessionMissing` with the middleware's own ``401`` JSON, and add
    ``config``'s login and logout paths (which the middleware answers; no route serves
    them) to ``app``'s OpenAPI schema, so ``/docs`` shows how to log in."""
    app.add_exception_handler(WxSessionMissing, _refuse)
    build = app.openapi

    def openapi() -> Dict[str, Any]:
        schema = build()
        paths = schema.setdefault("paths", {})
        if config.login_path not in paths:
            paths.update(_login_paths(config))
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes.setdefault(
                SCHEME_NAME,
                {"type": "apiKey", "in": "header", "name": config.token_headers[0]},
            )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _error(description: str) -> Dict[str, Any]:
    error = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "errcode": {"type": "integer", "description": "WeChat's errcode, when it gave one"},
        },
    }
    return {"description": description, "content": {"application/json": {"schema": error}}}


def _login_paths(config: WxConfig) -> Dict[str, Any]:
    """The OpenAPI path items of the login and logout paths (the README's HTTP contract)."""
    code = {
        "type": "object",
        "required": ["code"],
        "properties": {
            "code": {
                "type": "string",
                "maxLength": MAX_CODE_LENGTH,
                "description": "The code from wx.login() (valid 5 minutes, usable once).",
            }
        },
    }
    answer: Dict[str, Any] = {
        "type": "object",
        "required": ["3rd_session", "expires_in"],
        "properties": {
            "3rd_session": {"type": "string", "description": "Send it in 3rd-session."},
            "expires_in": {"type": "integer", "description": "Seconds of idle lifetime."},
        },
    }
    login = {
        "tags": ["WeChat login"],
        "summary": "Log in with a wx.login() code",
        "operationId": "wx_login",
        "security": [],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": code},
                "application/x-www-form-urlencoded": {"schema": code},
            },
        },
        "responses": {
            "200": {
                "description": "The session token.",
                "content": {"application/json": {"schema": answer}},
            },
            "400": _error("The body or the code is malformed."),
            "401": _error("The code is invalid or was already used (invalid_code)."),
            "403": _error("WeChat blocked this user."),
            "429": _error("Too many logins for this user (Retry-After)."),
            "502": _error("WeChat gave an unusable answer."),
            "503": _error("WeChat is busy, or the session store is down."),
            "504": _error("WeChat did not answer in time."),
        },
    }
    logout = {
        "tags": ["WeChat login"],
        "summary": "End the session",
        "operationId": "wx_logout",
        "security": [{SCHEME_NAME: []}],
        "responses": {
            "204": {"description": "The session is ended (or was already gone)."},
            "401": _error("No session token."),
        },
    }
    return {config.login_path: {"post": login}, config.logout_path: {"post": logout}}
