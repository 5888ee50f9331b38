"""CHANGELOG.md follows Keep a Changelog 1.1.0 (https://keepachangelog.com/en/1.1.0/)."""

from __future__ import annotations

import re

from .support import ROOT

SECTIONS = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")
LINK_REF = re.compile(r"^\[([^\]]+)\]: https://\S+$")


def test_changelog_follows_keep_a_changelog() -> None:
    lines = (ROOT / "CHANGELOG.md").read_text().splitlines()
    assert lines[0] == "# Changelog"
    assert any("https://keepachangelog.com/en/1.1.0/" in line for line in lines[:6])

    releases = [line[3:] for line in lines if line.startswith("## ")]
    assert releases[0] == "[Unreleased]", "Unreleased comes first"
    for heading in releases[1:]:
        assert re.fullmatch(r"\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}", heading), heading

    # Every entry sits in one of the six sections, inside a release.
    section = None
    for line in lines:
        if line.startswith("## "):
            section = None
        elif line.startswith("### "):
            assert line[4:] in SECTIONS, line
            section = line[4:]
        elif line.startswith("- "):
            assert section, f"an entry outside a section: {line}"

    # The link references close the file, one for every release heading.
    first_ref = next(i for i, line in enumerate(lines) if LINK_REF.match(line))
    tail = [line for line in lines[first_ref:] if line]
    assert all(LINK_REF.match(line) for line in tail), "only link references after the first"
    refs = {LINK_REF.match(line).group(1) for line in tail}  # type: ignore[union-attr]
    assert refs == {heading.split("]")[0][1:] for heading in releases}
