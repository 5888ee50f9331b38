"""A login on a plain ``pip install wxmiddleware``, run by ``test_plain_install.py``.

It runs with the python of a virtualenv that has only the wheel and its base dependencies,
from a folder outside the checkout: ``WxMiddleware`` with no store configured (the default
SQLite store, under ``$XDG_STATE_HOME``), served by werkzeug on a loopback port, logs a user in
against the fake WeChat and then resolves the token on a protected path, over sockets with
requests. It prints one JSON object for the test to check.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from typing import Any, Callable, Iterable, List, Tuple

import requests
from werkzeug.serving import make_server

import wxmiddleware
from wxmiddleware import WxMiddleware
from wxmiddleware.stores.sqlite import default_sqlite_path
from wxmiddleware.testing import FakeWeChat, log_in

StartResponse = Callable[[str, List[Tuple[str, str]]], Any]


def whoami(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    """The app behind the middleware: the openid of the request's session."""
    body = json.dumps({"openid": environ["wxmiddleware.openid"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def main() -> None:
    with FakeWeChat() as fake:
        app = WxMiddleware(whoami, appid=fake.appid, secret=fake.secret, api_base=fake.url)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            with requests.Session() as http:
                token = log_in(http, fake, "alice", path=f"{base}/wx/login")
                me = http.get(f"{base}/api/me", headers={"3rd-session": token}, timeout=10)
                anonymous = http.get(f"{base}/api/me", timeout=10)
        finally:
            server.shutdown()
            thread.join()
            app.close()
        result = {
            "package": wxmiddleware.__file__,
            "store": str(default_sqlite_path(fake.appid)),
            "token": token,
            "me": [me.status_code, me.json()],
            "anonymous": anonymous.status_code,
            "alice": fake.openid_for("alice"),
            "extras": [
                name for name in ("aiohttp", "httpx", "redis") if importlib.util.find_spec(name)
            ],
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
