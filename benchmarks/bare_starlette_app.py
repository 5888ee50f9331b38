"""The Starlette example without the middleware: the baseline of the server benchmarks.

It mirrors ``examples/starlette_app.py``: ``/api/me`` answers the same JSON from a constant
instead of ``request.user``, and ``/wx/login`` calls jscode2session with the package's own
asynchronous client and answers, with no session and no store.

Run: ``WX_APPID=... WX_SECRET=... WX_API_BASE=... uvicorn benchmarks.bare_starlette_app:app``
"""

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wxmiddleware import WxConfig
from wxmiddleware.wechat.aio import AsyncWeChatClient

OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
UNIONID = "o6_bmasdasdsad6_2sgVt7hMZOPfL"

wechat = AsyncWeChatClient(WxConfig.from_env())


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def me(request: Request) -> JSONResponse:
    return JSONResponse({"openid": OPENID, "unionid": UNIONID})


async def login(request: Request) -> JSONResponse:
    reply = await wechat.code_to_session(json.loads(await request.body())["code"])
    return JSONResponse({"openid": reply.openid})


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/api/me", me),
        Route("/wx/login", login, methods=["POST"]),
    ]
)
