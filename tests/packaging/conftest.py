"""The packaging tests' shared fixture: the built sdist and wheel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .support import ROOT


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder with the sdist and wheel: the ones `tox -e package` built and twine checked
    (``WX_TEST_DIST``), else a fresh build, as ``python -m build`` makes them."""
    built = os.environ.get("WX_TEST_DIST")
    if built:
        return Path(built)
    pytest.importorskip("build", reason="building the sdist and wheel needs `build`")
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return out
