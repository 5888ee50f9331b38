"""Flask with flask-cors, wrapped by the middleware: a page on another origin calls it
(tests/e2e/test_browser.py). Served as ``tests.e2e.browser_flask_app:app``.

flask-cors is an extension, inside the app and so behind the middleware: it answers the
preflights to the app's routes (the middleware lets them through) and decorates the app's
answers. The middleware's own answers (login, logout, 401s) get their CORS headers from its
``cors_origins`` policy, set through ``WX_CORS_ORIGINS`` to the same origins.
The page origins come from ``TEST_PAGE_ORIGINS`` (comma-separated).
"""

from __future__ import annotations

import os
from typing import Any, List

from flask import Flask, jsonify, request
from flask_cors import CORS

from wxmiddleware import WxConfig, WxMiddleware

PAGE_ORIGINS: List[str] = [
    origin.strip() for origin in os.environ.get("TEST_PAGE_ORIGINS", "").split(",") if origin
]
#: What a page's fetch sends beyond the safelisted headers: the token and a JSON body's type.
REQUEST_HEADERS = ["3rd-session", "Content-Type"]

flask_app = Flask(__name__)
CORS(flask_app, origins=PAGE_ORIGINS, allow_headers=REQUEST_HEADERS)


@flask_app.get("/health")
def health() -> Any:
    return jsonify(ok=True)


@flask_app.get("/api/me")
def me() -> Any:
    return jsonify(openid=request.environ["wxmiddleware.openid"])


flask_app.wsgi_app = WxMiddleware(  # type: ignore[method-assign]
    flask_app.wsgi_app, config=WxConfig.from_env(public_paths=("/health",))
)
app = flask_app
