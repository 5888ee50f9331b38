"""A real browser (headless Chromium) logs in from a page on another origin (issue 15).

The page is served from a second loopback port, so every call to the app is cross-origin:
the login's JSON body and the ``3rd-session`` header make Chromium send a CORS preflight
first, without credentials, and read an answer only when its CORS headers allow it. Two
deployments are driven: Flask + flask-cors under gunicorn (the CORS layer inside the app,
the middleware's ``cors_origins`` policy for its own answers) and Starlette with
``CORSMiddleware`` around the middleware under uvicorn (no policy). The same page loaded as
``localhost`` instead of ``127.0.0.1`` is an origin neither allows.

Chromium and chromedriver come from apt (``.ci/run`` installs them); under CI a missing one
fails the test rather than skipping it.
"""

from __future__ import annotations

import os
import shutil
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from wxmiddleware.testing import FakeWeChat

from .servers import app_env, free_port, python_module, serve

# The page: runFlow() logs in with a code and calls the protected route, as an H5 page in a
# <web-view> would; every step reports what the page could read (or the fetch error).
PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>h5</title></head><body><script>
async function call(url, init) {
  try {
    const response = await fetch(url, init);
    let body = null;
    try { body = await response.json(); } catch (error) { body = null; }
    return {status: response.status, body: body};
  } catch (error) {
    return {error: String(error)};
  }
}
async function runFlow(api, code) {
  const login = await call(api + "/wx/login", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({code: code}),
  });
  const token = login.body ? login.body["3rd_session"] : null;
  const me = await call(api + "/api/me", {headers: {"3rd-session": token || ""}});
  const anonymous = await call(api + "/api/me", {headers: {"3rd-session": "A".repeat(43)}});
  return {login: login, me: me, anonymous: anonymous};
}
</script></body></html>"""

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def browser_binaries() -> List[str]:
    """``[chromium, chromedriver]``; fails under CI, skips elsewhere, when one is missing."""
    found = [next(filter(None, map(shutil.which, CHROMIUM_CANDIDATES)), None)]
    found.append(shutil.which("chromedriver"))
    if None in found:
        if os.environ.get("CI"):
            pytest.fail("Chromium or chromedriver is missing; .ci/run installs them from apt")
        pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver)")
    return [str(path) for path in found]


@contextmanager
def page_server() -> Iterator[int]:
    """Serve :data:`PAGE` at ``/`` on a loopback port of its own: the page's origin."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium driven through chromedriver (selenium)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = browser_binaries()
    options = webdriver.ChromeOptions()
    # Both paths given: selenium never looks for (or downloads) a browser of its own.
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    browser.set_script_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()


def run_page(browser: Any, page_url: str, api: str, code: str) -> Dict[str, Any]:
    browser.get(page_url)
    result: Dict[str, Any] = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "runFlow(arguments[0], arguments[1]).then(done, (error) => done({error: String(error)}));",
        api,
        code,
    )
    return result


def check_deployment(
    fake: FakeWeChat,
    command: List[str],
    port: int,
    env: Dict[str, str],
    workdir: Path,
    page_port: int,
) -> None:
    allowed = f"http://127.0.0.1:{page_port}"
    with serve(command, env, port, workdir) as server, chromium() as browser:
        result = run_page(browser, allowed + "/", server.url, fake.issue_code("alice"))
        assert result["login"]["status"] == 200, (result, server.log())
        assert len(result["login"]["body"]["3rd_session"]) >= 43
        assert result["me"] == {"status": 200, "body": {"openid": fake.openid_for("alice")}}
        # The middleware's 401 is readable cross-origin: the page can tell it must log in.
        assert result["anonymous"]["status"] == 401, result
        assert result["anonymous"]["body"]["error"] == "invalid_session"

        # localhost is another origin than 127.0.0.1: the browser refuses every answer.
        other = run_page(browser, f"http://localhost:{page_port}/", server.url, fake.issue_code())
        assert "error" in other["login"] and "error" in other["me"], other
        assert "error" in other["anonymous"], other


@pytest.mark.e2e
def test_flask_cors_under_gunicorn(fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    browser_binaries()
    pytest.importorskip("gunicorn")
    pytest.importorskip("flask_cors")
    with page_server() as page_port:
        origin = f"http://127.0.0.1:{page_port}"
        env = app_env(
            fake_wechat, tmp_path / "state", TEST_PAGE_ORIGINS=origin, WX_CORS_ORIGINS=origin
        )
        port = free_port()
        command = [
            *python_module("gunicorn"),
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "tests.e2e.browser_flask_app:app",
        ]
        check_deployment(fake_wechat, command, port, env, tmp_path, page_port)


@pytest.mark.e2e
def test_starlette_cors_middleware_under_uvicorn(fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    browser_binaries()
    pytest.importorskip("uvicorn")
    pytest.importorskip("starlette")
    with page_server() as page_port:
        env = app_env(
            fake_wechat, tmp_path / "state", TEST_PAGE_ORIGINS=f"http://127.0.0.1:{page_port}"
        )
        port = free_port()
        command = [
            *python_module("uvicorn"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "tests.e2e.browser_starlette_app:app",
        ]
        check_deployment(fake_wechat, command, port, env, tmp_path, page_port)
