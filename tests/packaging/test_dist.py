"""The sdist and wheel: what each carries, their metadata, and the one version number."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path, PurePosixPath
from typing import List

import wxmiddleware
from wxmiddleware._cli_demo import EXAMPLES

from .support import ROOT

VERSION = wxmiddleware.__version__


def wheel_names(dist: Path) -> List[str]:
    [wheel] = dist.glob(f"wxmiddleware-{VERSION}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def sdist_names(dist: Path) -> List[str]:
    [sdist] = dist.glob(f"wxmiddleware-{VERSION}.tar.gz")
    with tarfile.open(sdist) as archive:
        # Paths inside the sdist's top folder, wxmiddleware-<version>/.
        return [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]


def metadata(dist: Path) -> Message:
    [wheel] = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"wxmiddleware-{VERSION}.dist-info/METADATA").decode()
    return Parser().parsestr(text)


def is_test_file(name: str) -> bool:
    path = PurePosixPath(name)
    return (
        bool({"tests", "test"} & set(path.parts[:-1]))
        or path.name.startswith("test_")
        or path.name.endswith(".test.js")
    )


def test_wheel_has_the_package_license_and_demo_examples_and_no_tests(dist: Path) -> None:
    names = wheel_names(dist)
    assert "wxmiddleware/__init__.py" in names
    assert "wxmiddleware/py.typed" in names
    assert f"wxmiddleware-{VERSION}.dist-info/licenses/LICENSE" in names
    assert {name.split("/")[0] for name in names} == {
        "wxmiddleware",
        f"wxmiddleware-{VERSION}.dist-info",
    }
    assert [name for name in names if is_test_file(name)] == []
    # The demo command loads these from wxmiddleware._examples when run from the wheel.
    examples = {
        PurePosixPath(name).stem for name in names if name.startswith("wxmiddleware/_examples/")
    }
    assert examples == {"__init__", *EXAMPLES.values()}


def test_sdist_has_the_license_changelog_and_sources_and_no_caches(dist: Path) -> None:
    names = sdist_names(dist)
    for required in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "tox.ini"):
        assert required in names
    assert "wxmiddleware/__init__.py" in names
    assert [n for n in names if re.search(r"(^|/)(\.hypothesis|__pycache__)/|\.pyc$", n)] == []


def test_metadata_license_urls_and_python_classifiers(dist: Path) -> None:
    meta = metadata(dist)
    assert meta["Version"] == VERSION
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    urls = {entry.split(",", 1)[0] for entry in meta.get_all("Project-URL")}
    assert {"Homepage", "Documentation", "Changelog", "Issues", "Source"} <= urls
    # The Python versions claimed are the ones tox.ini tests (py{39,310,...}).
    tested = re.search(r"^\s*py\{([\d,]+)\}$", (ROOT / "tox.ini").read_text(), re.M)
    assert tested
    versions = [f"{v[0]}.{v[1:]}" for v in tested.group(1).split(",")]
    minor = re.compile(r"Programming Language :: Python :: (3\.\d+)$")
    claimed = [m.group(1) for c in meta.get_all("Classifier") if (m := minor.match(c))]
    assert claimed == versions
    assert meta["Requires-Python"] == f">={versions[0]}"


def test_the_command_reports_the_packaged_version(dist: Path, tmp_path: Path) -> None:
    # From an empty folder: the installed package, not the checkout, answers.
    result = subprocess.run(
        [sys.executable, "-m", "wxmiddleware", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wxmiddleware {metadata(dist)['Version']}"
