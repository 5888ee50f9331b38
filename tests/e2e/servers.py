"""Start an example app under a real server in a subprocess and wait until it answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterator, List, Mapping, Optional

import requests

if TYPE_CHECKING:
    from wxmiddleware.testing import FakeWeChat

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RunningServer:
    """A server process, its base URL and the file its output goes to."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def app_env(fake: FakeWeChat, state_dir: Optional[Path] = None, **variables: str) -> Dict[str, str]:
    """The environment of an example app pointed at ``fake``, with short WeChat timeouts.

    ``state_dir`` becomes ``XDG_STATE_HOME``, where the default SQLite store lives, so each
    test keeps its sessions apart; ``variables`` add or override ``WX_*`` settings.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("WX_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(
        WX_APPID=fake.appid,
        WX_SECRET=fake.secret,
        WX_API_BASE=fake.url,
        WX_READ_TIMEOUT="1",
        WX_CONNECT_TIMEOUT="1",
    )
    if state_dir is not None:
        env["XDG_STATE_HOME"] = str(state_dir)
    env.update(variables)
    return env


@contextmanager
def serve(
    command: List[str],
    env: Mapping[str, str],
    port: int,
    workdir: Path,
    ready_path: str = "/health",
) -> Iterator[RunningServer]:
    """Run ``command`` (from ``workdir``, not the project root) until the block ends."""
    log_path = workdir / "server.log"
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=workdir, env=dict(env), stdout=log, stderr=subprocess.STDOUT
        )
    server = RunningServer(process, url, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{server.log()}")
            try:
                requests.get(url + ready_path, timeout=2)
                break
            except requests.RequestException:  # not listening yet, or workers still booting
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start:\n{server.log()}") from None
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def python_module(module: str) -> List[str]:
    return [sys.executable, "-m", module]
