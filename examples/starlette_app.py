"""Starlette with WeChat mini-program login.

Run: ``WX_APPID=... WX_SECRET=... uvicorn --workers 2 examples.starlette_app:app``
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from wxmiddleware import WxASGIMiddleware, WxConfig


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def me(request: Request) -> JSONResponse:
    # request.user is the middleware's WxUser: identity is the openid.
    return JSONResponse({"openid": request.user.identity, "unionid": request.user.unionid})


async def echo(websocket: WebSocket) -> None:
    # The middleware let this websocket through only with a valid session.
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


starlette_app = Starlette(
    routes=[
        Route("/health", health),
        Route("/api/me", me),
        WebSocketRoute("/ws", echo),
    ]
)
app = WxASGIMiddleware(starlette_app, config=WxConfig.from_env(public_paths=("/health",)))
