"""FastAPI with WeChat mini-program login.

Run: ``WX_APPID=... WX_SECRET=... uvicorn --workers 2 examples.fastapi_app:app``
"""

from typing import Annotated, Any, Dict, Optional

from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect

from wxmiddleware import WxASGIMiddleware, WxConfig, WxSession

app = FastAPI()
# FastAPI's documentation pages fetch /openapi.json without a session: keep them public.
PUBLIC_PATHS = ("/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
app.add_middleware(WxASGIMiddleware, config=WxConfig.from_env(public_paths=PUBLIC_PATHS))


async def current_session(request: Request) -> WxSession:
    """The caller's session; on an optional path without one, ``401``.

    A coroutine: FastAPI runs a plain ``def`` dependency in its thread pool.
    """
    session: Optional[WxSession] = request.scope["wxmiddleware.session"]
    if session is None:
        raise HTTPException(status_code=401, detail="Log in first.")
    return session


CurrentSession = Annotated[WxSession, Depends(current_session)]


@app.get("/health")
async def health() -> Dict[str, Any]:
    return {"ok": True}


@app.get("/api/me")
async def me(session: CurrentSession) -> Dict[str, Any]:
    return {"openid": session.openid, "unionid": session.unionid}


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    # The middleware let this websocket through only with a valid session.
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass
