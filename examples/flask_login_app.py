"""Flask-Login on a WeChat session: a ``request_loader`` that reads the session.

Run: ``WX_APPID=... WX_SECRET=... gunicorn -w 2 examples.flask_login_app:app``

The mini-program sends the ``3rd-session`` header on every request; the middleware resolves
it, and Flask-Login's ``request_loader`` turns the session into your user, so
``current_user`` and ``@login_required`` work. An unauthorized request gets the middleware's
``401`` JSON, not a redirect to a login page.
"""

from typing import Optional

from flask import Flask, jsonify
from flask_login import LoginManager, UserMixin, current_user, login_required

from wxmiddleware import session_of
from wxmiddleware.integrations.flask import WxLogin, unauthorized_response

flask_app = Flask(__name__)
flask_app.config["WX_PUBLIC_PATHS"] = ["/health"]
WxLogin(flask_app)

login_manager = LoginManager(flask_app)


class User(UserMixin):
    """Your user model; here, just the openid."""

    def __init__(self, openid: str) -> None:
        self.id = openid


@login_manager.request_loader
def load_user_from_request(request) -> Optional[User]:  # type: ignore[no-untyped-def]
    session = session_of(request)
    return None if session is None else User(session.openid)


# Flask-Login answers an anonymous @login_required with 401 HTML or a redirect to login_view:
# answer it as the middleware does instead.
login_manager.unauthorized_handler(unauthorized_response)


@flask_app.get("/health")
def health():  # type: ignore[no-untyped-def]
    return jsonify(ok=True)


@flask_app.get("/api/me")
@login_required
def me():  # type: ignore[no-untyped-def]
    return jsonify(openid=current_user.id)


app = flask_app
