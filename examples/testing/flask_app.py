"""A Flask app built by a factory, so each test builds it after setting the environment."""

from typing import Optional

from flask import Flask, request

from wxmiddleware import WxConfig, WxMiddleware


def create_app(config: Optional[WxConfig] = None) -> Flask:
    app = Flask(__name__)

    @app.get("/health")
    def health():
        return {"ok": True}

    @app.get("/api/me")
    def me():
        return {"openid": request.environ["wxmiddleware.openid"]}

    # Wrap app.wsgi_app, not app: `flask run`, app.test_client() and later routes keep working.
    app.wsgi_app = WxMiddleware(
        app.wsgi_app, config=config or WxConfig.from_env(public_paths=("/health",))
    )
    return app
