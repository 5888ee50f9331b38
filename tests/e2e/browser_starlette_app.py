"""Starlette with its ``CORSMiddleware`` around the middleware: a page on another origin
calls it (tests/e2e/test_browser.py). Served as ``tests.e2e.browser_starlette_app:app``.

``CORSMiddleware`` is outermost, so it answers every preflight before the middleware sees
it and puts its headers on every answer, the middleware's 401s and logins included: no
``cors_origins`` policy is needed. The page origins come from ``TEST_PAGE_ORIGINS``.
"""

from __future__ import annotations

import os
from typing import List

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wxmiddleware import WxASGIMiddleware, WxConfig

PAGE_ORIGINS: List[str] = [
    origin.strip() for origin in os.environ.get("TEST_PAGE_ORIGINS", "").split(",") if origin
]
#: What a page's fetch sends beyond the safelisted headers: the token and a JSON body's type.
REQUEST_HEADERS = ["3rd-session", "Content-Type"]


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def me(request: Request) -> JSONResponse:
    return JSONResponse({"openid": request.user.identity})


# CORSMiddleware outermost, so it answers preflights before the middleware sees them and
# puts its headers on every answer, the middleware's 401s included.
app = CORSMiddleware(
    WxASGIMiddleware(
        Starlette(routes=[Route("/health", health), Route("/api/me", me)]),
        config=WxConfig.from_env(public_paths=("/health",)),
    ),
    allow_origins=PAGE_ORIGINS,
    allow_methods=["GET", "POST"],
    allow_headers=REQUEST_HEADERS,
)
