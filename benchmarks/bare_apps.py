"""The examples without the middleware: the baselines of the server benchmarks.

``flask_app`` mirrors ``examples/flask_app.py``, ``starlette_app`` ``examples/starlette_app.py``:
``/api/me`` answers the same JSON from a constant instead of the session, and ``/wx/login``
calls jscode2session with the package's own client (sync / async) and answers, with no
session and no store (the reference for login throughput). Run with ``WX_APPID``,
``WX_SECRET``, ``WX_API_BASE`` set: ``gunicorn --pythonpath benchmarks bare_apps:flask_app``
or ``uvicorn --app-dir benchmarks bare_apps:starlette_app``.
"""

import json

from flask import Flask, jsonify, request
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from wxmiddleware import WxConfig
from wxmiddleware.wechat import WeChatClient
from wxmiddleware.wechat.aio import AsyncWeChatClient

OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
UNIONID = "o6_bmasdasdsad6_2sgVt7hMZOPfL"
wechat, async_wechat = WeChatClient(WxConfig.from_env()), AsyncWeChatClient(WxConfig.from_env())

flask_app = Flask(__name__)
flask_app.get("/health", endpoint="health")(lambda: jsonify(ok=True))
flask_app.get("/api/me", endpoint="me")(lambda: jsonify(openid=OPENID, unionid=UNIONID))


@flask_app.post("/wx/login")
def login():  # type: ignore[no-untyped-def]
    reply = wechat.code_to_session(json.loads(request.get_data())["code"])
    return jsonify({"openid": reply.openid})


async def health(request: object) -> JSONResponse:
    return JSONResponse({"ok": True})


async def me(request: object) -> JSONResponse:
    return JSONResponse({"openid": OPENID, "unionid": UNIONID})


async def async_login(request: object) -> JSONResponse:
    body = await request.body()  # type: ignore[attr-defined]
    reply = await async_wechat.code_to_session(json.loads(body)["code"])
    return JSONResponse({"openid": reply.openid})


routes = [Route("/health", health), Route("/api/me", me)]
starlette_app = Starlette(routes=[*routes, Route("/wx/login", async_login, methods=["POST"])])
