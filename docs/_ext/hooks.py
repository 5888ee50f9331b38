"""MkDocs hooks for the docs site: pages that show a file kept elsewhere in the repository.

A page holding ``<!-- include: PATH -->`` shows the Markdown file at PATH (relative to the
project root) in its place, so ``CHANGELOG.md`` and ``benchmarks/RESULTS.md`` have one source.
Links in the included file that point into ``docs/`` are made relative to the docs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r"^<!-- include: (?P<path>\S+) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    def include(match: re.Match[str]) -> str:
        text = (ROOT / match["path"]).read_text(encoding="utf-8")
        return text.replace("](../docs/", "](").replace("](docs/", "](")

    return INCLUDE.sub(include, markdown)
