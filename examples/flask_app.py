"""Flask with WeChat mini-program login.

Run: ``WX_APPID=... WX_SECRET=... gunicorn -w 2 examples.flask_app:app``
"""

from flask import Flask, jsonify, request

from wxmiddleware import WxConfig, WxMiddleware

flask_app = Flask(__name__)


@flask_app.get("/health")
def health():  # type: ignore[no-untyped-def]
    return jsonify(ok=True)


@flask_app.get("/api/me")
def me():  # type: ignore[no-untyped-def]
    return jsonify(
        openid=request.environ["wxmiddleware.openid"],
        unionid=request.environ["wxmiddleware.unionid"],
    )


flask_app.wsgi_app = WxMiddleware(  # type: ignore[method-assign]
    flask_app.wsgi_app, config=WxConfig.from_env(public_paths=("/health",))
)
app = flask_app
