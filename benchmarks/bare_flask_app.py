"""The Flask example without the middleware: the baseline of the server benchmarks.

It mirrors ``examples/flask_app.py`` route for route: ``/api/me`` answers the same JSON from
a constant instead of the session, and ``/wx/login`` calls jscode2session with the package's
own client and answers, with no session and no store (the reference for login throughput).

Run: ``WX_APPID=... WX_SECRET=... WX_API_BASE=... gunicorn benchmarks.bare_flask_app:app``
"""

import json

from flask import Flask, jsonify, request

from wxmiddleware import WxConfig
from wxmiddleware.wechat import WeChatClient

OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
UNIONID = "o6_bmasdasdsad6_2sgVt7hMZOPfL"

app = Flask(__name__)
wechat = WeChatClient(WxConfig.from_env())


@app.get("/health")
def health():  # type: ignore[no-untyped-def]
    return jsonify(ok=True)


@app.get("/api/me")
def me():  # type: ignore[no-untyped-def]
    return jsonify(openid=OPENID, unionid=UNIONID)


@app.post("/wx/login")
def login():  # type: ignore[no-untyped-def]
    reply = wechat.code_to_session(json.loads(request.get_data())["code"])
    return jsonify({"openid": reply.openid})
