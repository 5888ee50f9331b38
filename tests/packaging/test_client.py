"""The mini-program client package (``clients/miniprogram``): its node tests pass, ``npm pack``
ships only the client, and its declarations and version match what it exports."""

from __future__ import annotations

import json
import re
import subprocess

import wxmiddleware

from .support import ROOT, tool

CLIENT = ROOT / "clients" / "miniprogram"


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
