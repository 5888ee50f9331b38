"""FastAPI with WeChat mini-program login, through security dependencies.

Run: ``WX_APPID=... WX_SECRET=... uvicorn --workers 2 examples.fastapi_app:app``

``/docs`` shows the login path and an Authorize button that sends the ``3rd-session``
header with every call it tries.
"""

from typing import Any, Dict

from fastapi import FastAPI, Response, WebSocket, WebSocketDisconnect

from wxmiddleware import WxASGIMiddleware, WxConfig
from wxmiddleware.integrations.fastapi import CurrentWxSession, OptionalWxSession, install

# FastAPI's documentation pages fetch /openapi.json without a session: keep them public.
PUBLIC_PATHS = ("/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
# Prometheus metrics at /metrics when prometheus-client is installed (docs/operations.md;
# with several workers, set PROMETHEUS_MULTIPROC_DIR). Keep /metrics off the internet.
try:
    from wxmiddleware.observers.prometheus import PrometheusObserver, metrics_response

    OBSERVERS = [PrometheusObserver()]
except ImportError:
    OBSERVERS = []
config = WxConfig.from_env(public_paths=PUBLIC_PATHS + (("/metrics",) if OBSERVERS else ()))

app = FastAPI()
app.add_middleware(WxASGIMiddleware, config=config, observers=OBSERVERS)
# The login and logout paths in /openapi.json; a missing session answered as the middleware does.
install(app, config)


@app.get("/health")
async def health() -> Dict[str, Any]:
    return {"ok": True}


if OBSERVERS:

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        body, content_type = metrics_response()
        return Response(body, media_type=content_type)


@app.get("/api/me")
async def me(session: CurrentWxSession) -> Dict[str, Any]:
    return {"openid": session.openid, "unionid": session.unionid}


@app.get("/feed")
async def feed(session: OptionalWxSession) -> Dict[str, Any]:
    # With WX_OPTIONAL_PATHS=/feed, a request without a session gets here with None.
    items = ["for everyone"]
    if session is not None:
        items.append(f"for {session.openid}")
    return {"items": items}


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    # The middleware let this websocket through only with a valid session.
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass
