"""Django's WxLoginMiddleware reads X-Forwarded-For behind ``trusted_proxies`` under ASGI as
under WSGI.

With ``trusted_proxies`` the login rate limit counts the client that ``X-Forwarded-For``
names (docs/operations.md, "Client addresses and proxies"): four users behind one proxy, from
four addresses, each get their own counter (``200`` four times), whichever way Django is
served. Django's settings are set once per process, so each mode runs in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List

import pytest

from wxmiddleware.testing import FakeWeChat

pytest.importorskip("django")
pytest.importorskip("webtest")

ADDRESSES = ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"]

SCRIPT = r"""
import asyncio, json, sys
import django
from django.conf import settings

mode, appid, secret, api_base, store = sys.argv[1:6]
codes = json.loads(sys.argv[6])
settings.configure(
    ROOT_URLCONF=__name__, SECRET_KEY="x", ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                    "wxmiddleware.integrations.django"],
    MIDDLEWARE=["wxmiddleware.integrations.django.middleware.WxLoginMiddleware"],
    WXMIDDLEWARE={"appid": appid, "secret": secret, "api_base": api_base, "store": store,
                  "login_rate_limit": "2/minute", "trusted_proxies": 1},
)
django.setup()
urlpatterns = []
statuses = []
if mode == "asgi":
    from django.core.asgi import get_asgi_application

    app = get_asgi_application()

    async def login(address, code):
        body = json.dumps({"code": code}).encode()
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/wx/login",
            "raw_path": b"/wx/login", "query_string": b"", "root_path": "",
            "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"x-forwarded-for", address.encode())],
            "client": ("10.0.0.1", 5000), "server": ("testserver", 80),
        }
        messages = [{"type": "http.request", "body": body}]
        sent = []

        async def receive():
            if messages:
                return messages.pop(0)
            await asyncio.sleep(3600)  # the client stays connected

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)
        return sent[0]["status"]

    async def main():
        return [await login(address, code) for address, code in codes]

    statuses = asyncio.run(main())
else:
    from django.core.wsgi import get_wsgi_application
    from webtest import TestApp

    client = TestApp(get_wsgi_application(), extra_environ={"REMOTE_ADDR": "10.0.0.1"})
    for address, code in codes:
        answer = client.post(
            "/wx/login", json.dumps({"code": code}),
            headers={"Content-Type": "application/json", "X-Forwarded-For": address,
                     "Host": "testserver"},
            expect_errors=True,
        )
        statuses.append(answer.status_int)
print(json.dumps(statuses))
"""


def _statuses(mode: str, fake: FakeWeChat, directory: Path) -> List[int]:
    script = directory / "django_xff.py"
    script.write_text(SCRIPT)
    codes = [(address, fake.issue_code(f"user-{address}")) for address in ADDRESSES]
    store = f"sqlite:///{directory}/{mode}.db"
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            mode,
            fake.appid,
            fake.secret,
            fake.url,
            store,
            json.dumps(codes),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=directory,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    statuses: List[int] = json.loads(out.stdout.strip().splitlines()[-1])
    return statuses


def test_logins_behind_a_trusted_proxy_count_each_forwarded_client(
    fake_wechat: FakeWeChat,
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        wsgi = _statuses("wsgi", fake_wechat, Path(directory))
        asgi = _statuses("asgi", fake_wechat, Path(directory))
    assert wsgi == [200, 200, 200, 200]
    assert asgi == wsgi
