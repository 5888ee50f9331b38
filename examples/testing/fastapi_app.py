"""A FastAPI app built by a factory, so each test builds it after setting the environment."""

from contextlib import asynccontextmanager
from typing import Annotated, Any, AsyncIterator, Dict, Optional

from fastapi import Depends, FastAPI, Request

from wxmiddleware import WxASGIMiddleware, WxConfig, WxSession, open_async_store

# FastAPI's documentation pages fetch /openapi.json without a session: keep them public.
PUBLIC_PATHS = ("/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")


async def current_session(request: Request) -> WxSession:
    session: WxSession = request.scope["wxmiddleware.session"]
    return session


def create_app(config: Optional[WxConfig] = None) -> FastAPI:
    config = config or WxConfig.from_env(public_paths=PUBLIC_PATHS)
    # Opened here rather than by add_middleware, so routes can share it (e.g. with
    # AsyncWxApi(config, store)); a store passed in is ours to close, at shutdown.
    store = open_async_store(config.store, config.appid)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await store.aclose()

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(WxASGIMiddleware, config=config, store=store)
    app.state.wx_store = store

    @app.get("/health")
    async def health() -> Dict[str, Any]:
        return {"ok": True}

    @app.get("/api/me")
    async def me(session: Annotated[WxSession, Depends(current_session)]) -> Dict[str, Any]:
        return {"openid": session.openid}

    return app
