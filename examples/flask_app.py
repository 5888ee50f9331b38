"""Flask with WeChat mini-program login, through the ``WxLogin`` extension.

Run: ``WX_APPID=... WX_SECRET=... gunicorn -w 2 examples.flask_app:app``
"""

from flask import Flask, Response, jsonify

from wxmiddleware.integrations.flask import WxLogin, current_wx_session, wx_login_required

# Prometheus metrics at /metrics when prometheus-client is installed (docs/operations.md;
# with several workers, set PROMETHEUS_MULTIPROC_DIR). Keep /metrics off the internet.
try:
    from wxmiddleware.observers.prometheus import PrometheusObserver, metrics_response

    OBSERVERS = [PrometheusObserver()]
except ImportError:
    OBSERVERS = []

flask_app = Flask(__name__)
# WX_* keys of app.config override the WX_* environment (WX_APPID, WX_SECRET, ...).
flask_app.config["WX_PUBLIC_PATHS"] = ["/health"] + (["/metrics"] if OBSERVERS else [])


@flask_app.get("/health")
def health():  # type: ignore[no-untyped-def]
    return jsonify(ok=True)


if OBSERVERS:

    @flask_app.get("/metrics")
    def metrics():  # type: ignore[no-untyped-def]
        body, content_type = metrics_response()
        return Response(body, content_type=content_type)


@flask_app.get("/api/me")
def me():  # type: ignore[no-untyped-def]
    # The middleware refused the request unless it had a session.
    return jsonify(openid=current_wx_session.openid, unionid=current_wx_session.unionid)


@flask_app.get("/feed")
def feed():  # type: ignore[no-untyped-def]
    # With WX_OPTIONAL_PATHS=/feed/*, a request without a session gets here too.
    if not current_wx_session:  # a proxy: test it for truth, not `is None`
        return jsonify(items=["for everyone"])
    return jsonify(items=["for everyone", f"for {current_wx_session.openid}"])


@flask_app.get("/feed/mine")
@wx_login_required
def my_feed():  # type: ignore[no-untyped-def]
    # On an optional path (WX_OPTIONAL_PATHS=/feed/*), the decorator answers the
    # middleware's 401 to a request without a session.
    return jsonify(openid=current_wx_session.openid)


# Installs the middleware on flask_app.wsgi_app: flask run and the test client use it too.
WxLogin(flask_app, observers=OBSERVERS)
app = flask_app
