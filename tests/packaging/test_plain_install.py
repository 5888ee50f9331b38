"""A plain ``pip install wxmiddleware`` (no extras) logs users in on the default store.

The default SQLite store (and the Redis one) seal session_keys at rest with AES-GCM from
``cryptography``, so it is a base dependency: before it was, a bare install answered ``500`` to
its first login (issue 14).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import wxmiddleware

from .test_dist import metadata

VERSION = wxmiddleware.__version__
LOGIN_SCRIPT = Path(__file__).with_name("plain_install_login.py")


def run(command: List[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_base_requirements_include_cryptography(dist: Path) -> None:
    requires = metadata(dist).get_all("Requires-Dist")
    base = {r.split(">")[0].strip() for r in requires if "extra ==" not in r}
    assert base == {"werkzeug", "requests", "cryptography"}


def test_a_plain_install_logs_in_and_resolves_the_token(dist: Path, tmp_path: Path) -> None:
    [wheel] = dist.glob(f"wxmiddleware-{VERSION}-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    # The wheel alone, as a user installs it: its base dependencies come from the index.
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    run([*pip, str(wheel)], timeout=900)

    # No WX_* settings and no PYTHON* paths leak in; -I keeps the checkout off sys.path, and the
    # default store goes under a fresh XDG_STATE_HOME.
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WX_", "PYTHON"))}
    env["XDG_STATE_HOME"] = str(state)
    work = tmp_path / "work"
    work.mkdir()
    result = run([str(python), "-I", str(LOGIN_SCRIPT)], cwd=work, env=env, timeout=300)
    seen = json.loads(result.stdout.splitlines()[-1])

    assert os.path.realpath(seen["package"]).startswith(os.path.realpath(venv))
    assert seen["extras"] == [], "the virtualenv has an extra installed"
    assert seen["me"] == [200, {"openid": seen["alice"]}]
    assert seen["anonymous"] == 401
    # The default SQLite store kept the session, sealed: no file of it holds the token.
    store = Path(seen["store"])
    assert store.parent == state / "wxmiddleware"
    assert store.is_file()
    token = seen["token"].encode()
    assert [p.name for p in store.parent.iterdir() if token in p.read_bytes()] == []
