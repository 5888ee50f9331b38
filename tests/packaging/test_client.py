"""The mini-program client package (``clients/miniprogram``): its node tests pass, ``npm pack``
ships only the client, its declarations and version match what it exports, and its ``appid``
option logs a non-WeChat app in to a real backend serving several apps."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, List

from werkzeug.serving import make_server

import wxmiddleware
from wxmiddleware import WxMiddleware
from wxmiddleware.config import WxApp, WxConfig
from wxmiddleware.stores.memory import MemoryStore
from wxmiddleware.testing import FakeWeChat
from wxmiddleware.testing.platforms import api_bases

from .support import ROOT, tool

CLIENT = ROOT / "clients" / "miniprogram"
SEVERAL_APPS = ROOT / "examples" / "miniprogram" / "several_apps.test.js"
DOUYIN_APPID = "tt0123456789abcdef"


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=CLIENT, capture_output=True, text=True, timeout=120)


def test_node_tests_pass() -> None:
    # `node --test` with no path finds test/*.test.js on every node from 18 on (newer ones read
    # a directory argument as a glob pattern instead).
    result = run([tool("node"), "--test", "--test-reporter=tap"])
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, output
    passed = re.search(r"^# pass (\d+)$", result.stdout, re.MULTILINE)
    assert passed and int(passed.group(1)) > 0, output
    assert "# SKIP" not in result.stdout, output


def test_npm_pack_ships_only_the_client_its_types_and_readme() -> None:
    result = run([tool("npm"), "pack", "--dry-run", "--json", "--ignore-scripts"])
    assert result.returncode == 0, result.stderr
    [tarball] = json.loads(result.stdout)
    assert {entry["path"] for entry in tarball["files"]} == {
        "index.js",
        "index.d.ts",
        "package.json",
        "README.md",
    }


def test_package_json_points_at_the_client_and_keeps_the_python_version() -> None:
    package = json.loads((CLIENT / "package.json").read_text())
    assert (CLIENT / package["main"]).is_file()
    assert (CLIENT / package["types"]).is_file()
    assert package["license"] == "MIT"
    # Client and middleware are released together, under one version number.
    assert package["version"] == wxmiddleware.__version__


def test_declarations_name_every_export() -> None:
    result = run([tool("node"), "-p", "JSON.stringify(Object.keys(require('./')))"])
    assert result.returncode == 0, result.stderr
    exports = json.loads(result.stdout)
    declarations = (CLIENT / "index.d.ts").read_text()
    declared = set(re.findall(r"^export declare (?:const|function) (\w+)", declarations, re.M))
    assert declared == set(exports)


def whoami(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The backend's ``/api/me``: the user, platform and app the middleware found."""
    body = json.dumps(
        {key: environ[f"wxmiddleware.{key}"] for key in ("openid", "platform", "appid")}
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` under werkzeug's threaded server on a free loopback port; yields its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_a_douyin_app_beside_a_wechat_app_logs_in_through_the_appid_option(
    fake_wechat: FakeWeChat,
) -> None:
    node = tool("node")
    fake_wechat.platforms.add_app("douyin", DOUYIN_APPID, "douyin-secret-0123456789")
    config = WxConfig(
        apps=(
            WxApp(fake_wechat.appid, fake_wechat.secret),
            WxApp(DOUYIN_APPID, "douyin-secret-0123456789", "douyin"),
        ),
        api_base=fake_wechat.url,
        **api_bases(fake_wechat.url),
    )
    backend = WxMiddleware(whoami, config, store=MemoryStore())
    codes: List[str] = [fake_wechat.platforms.issue_code(DOUYIN_APPID) for _ in range(2)]
    variables = {
        "FAKE_WECHAT_URL": fake_wechat.url,
        "WX_WECHAT_APPID": fake_wechat.appid,
        "WX_DOUYIN_APPID": DOUYIN_APPID,
        "WX_DOUYIN_CODES": json.dumps(codes),
        "WX_DOUYIN_OPENID": fake_wechat.platforms.openid_for("alice", DOUYIN_APPID),
    }
    with serving(backend) as url:
        result = subprocess.run(
            [node, "--test", "--test-reporter=tap", str(SEVERAL_APPS)],
            cwd=ROOT,
            env={**os.environ, "WX_APP_URL": url, **variables},
            capture_output=True,
            text=True,
            timeout=120,
        )
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, output
    assert "# SKIP" not in result.stdout, output
    assert re.search(r"^# pass 3$", result.stdout, re.MULTILINE), output
    # The Douyin app's one login reached Douyin's exchange; the app-less one was refused first.
    assert fake_wechat.platforms.calls_to("douyin") == 1
