"""``wxmiddleware demo`` and ``wxmiddleware fake-wechat``: an example app wired to the fake
WeChat, and the fake WeChat on its own.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any, List

from .testing import FakeWeChat
from .testing import main as fake_wechat_main

#: Demo frameworks and the example module that serves each: WSGI ones under werkzeug's
#: development server, ASGI ones under uvicorn.
WSGI_EXAMPLES = {"flask": "flask_app", "bottle": "bottle_app", "pyramid": "pyramid_app"}
ASGI_EXAMPLES = {"starlette": "starlette_app", "fastapi": "fastapi_app"}
EXAMPLES = {**WSGI_EXAMPLES, **ASGI_EXAMPLES}


def load_example(module: str) -> ModuleType:
    """Import an example from a checkout (``examples``) or from the installed wheel."""
    try:
        return importlib.import_module(f"examples.{module}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("examples", f"examples.{module}"):
            raise
    return importlib.import_module(f"wxmiddleware._examples.{module}")


def _demo_lines(url: str, fake: FakeWeChat) -> List[str]:
    code = fake.issue_code("alice")
    return [
        f"Demo app:    {url}  (login at /wx/login, protected /api/me, public /health)",
        f"Fake WeChat: {fake.url}  (appid {fake.appid})",
        "",
        "Try it:",
        f"  curl -s -X POST {url}/wx/login -H 'Content-Type: application/json'"
        f' -d \'{{"code": "{code}"}}\'',
        f"  curl -s {url}/api/me -H '3rd-session: <the 3rd_session from the answer>'",
        f"  curl -s -X POST {url}/wx/logout -H '3rd-session: <the same token>'",
        "",
        f"A new login code (each is single-use): curl -s '{fake.url}/fake/code?user=alice'",
        "Press Ctrl-C to stop.",
    ]


def _serve(app: Any, asgi: bool, host: str, port: int) -> None:
    if asgi:
        import uvicorn

        uvicorn.run(app, host=host, port=port)
    else:
        from werkzeug.serving import run_simple

        run_simple(host, port, app, threaded=True)


def demo(args: argparse.Namespace) -> int:
    """Start the fake WeChat and an example app wired to it, on the default store."""
    asgi = args.framework in ASGI_EXAMPLES
    if asgi and importlib.util.find_spec("uvicorn") is None:
        print(
            f"wxmiddleware demo: the {args.framework} example runs under uvicorn:"
            " pip install uvicorn",
            file=sys.stderr,
        )
        return 1
    fake = FakeWeChat(port=args.wechat_port)
    try:
        fake.start()
    except OSError as exc:
        print(f"wxmiddleware demo: cannot start the fake WeChat: {exc}", file=sys.stderr)
        return 1
    os.environ.update({"WX_APPID": fake.appid, "WX_SECRET": fake.secret, "WX_API_BASE": fake.url})
    try:
        module = load_example(EXAMPLES[args.framework])
    except ImportError as exc:
        fake.stop()
        print(
            f"wxmiddleware demo: the {args.framework} example needs {exc.name}: "
            f"pip install {exc.name}",
            file=sys.stderr,
        )
        return 1
    url = f"http://{args.host}:{args.port}"
    print("\n".join(_demo_lines(url, fake)), flush=True)
    try:
        _serve(module.app, asgi, args.host, args.port)
    except OSError as exc:
        print(f"wxmiddleware demo: cannot listen on {url}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


def fake_wechat(args: argparse.Namespace) -> int:
    """Run the fake WeChat server on its own."""
    options = {"--host": args.host, "--port": str(args.port), "--appid": args.appid}
    options["--secret"] = args.secret
    more = [part for app in args.app for part in ("--app", app)]
    return fake_wechat_main([part for pair in options.items() for part in pair] + more)


def add_demo_parsers(commands: Any) -> None:
    """Add ``demo`` and ``fake-wechat`` to the subcommands ``commands``."""
    run_demo = commands.add_parser(
        "demo", help="run an example app with the fake WeChat, nothing to configure"
    )
    run_demo.add_argument("--framework", choices=sorted(EXAMPLES), default="flask")
    run_demo.add_argument("--host", default="127.0.0.1", help="address (default %(default)s)")
    run_demo.add_argument("--port", type=int, default=8000, help="app port (default %(default)s)")
    run_demo.add_argument(
        "--wechat-port", type=int, default=0, help="fake WeChat port (default: a free one)"
    )
    run_demo.set_defaults(handler=demo)

    run_fake = commands.add_parser("fake-wechat", help="run the fake WeChat API server")
    run_fake.add_argument("--host", default="127.0.0.1", help="address (default %(default)s)")
    run_fake.add_argument("--port", type=int, default=8601, help="port (default %(default)s)")
    run_fake.add_argument("--appid", default=FakeWeChat.DEFAULT_APPID, help="appid to accept")
    run_fake.add_argument("--secret", default=FakeWeChat.DEFAULT_SECRET, help="secret to accept")
    run_fake.add_argument(
        "--app", action="append", default=[], metavar="APPID=SECRET", help="another app to serve"
    )
    run_fake.set_defaults(handler=fake_wechat)
