"""The documented test recipes (``examples/testing/``) run as written, each in a project of its
own: the files copied to an empty directory and ``pytest`` run there in a new process, as a user
would, with only the installed package and its pytest plugin.

tox runs each framework's recipe in that framework's environment (``py3xx-flask``,
``-fastapi``, ``-django``); under ``CI`` a missing framework fails instead of skipping.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "examples" / "testing"
#: What each recipe imports beyond the package: the framework, and its test client.
NEEDS: Dict[str, Tuple[str, ...]] = {
    "flask": ("flask",),
    "fastapi": ("fastapi", "httpx"),
    "django": ("django", "webtest"),
}


def recipe_files(framework: str) -> Tuple[Path, Path]:
    return RECIPES / f"{framework}_app.py", RECIPES / f"test_{framework}_app.py"


@pytest.mark.parametrize("framework", sorted(NEEDS))
def test_recipe(framework: str, tmp_path: Path) -> None:
    missing = [name for name in NEEDS[framework] if importlib.util.find_spec(name) is None]
    if missing:
        message = f"the {framework} recipe needs {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    project = tmp_path / "project"
    project.mkdir()
    for source in recipe_files(framework):
        shutil.copy(source, project / source.name)
    home = tmp_path / "home"
    home.mkdir()
    # Nothing of ours leaks in: no WX_* settings, not tox's --junitxml (it would overwrite
    # this run's report); HOME is empty, to show that no default store is written there.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WX_") and key not in ("PYTEST_ADDOPTS", "XDG_STATE_HOME")
    }
    env["HOME"] = str(home)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error::pytest.PytestUnraisableExceptionWarning",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"\b[1-9]\d* passed\b", output) and "skipped" not in output, output
    assert [path for path in home.rglob("*")] == []


def test_the_docs_show_each_recipe_as_it_runs() -> None:
    docs = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/testing.md" in readme
    for framework in NEEDS:
        for source in recipe_files(framework):
            assert source.read_text(encoding="utf-8") in docs, f"{source.name} in docs/testing.md"
