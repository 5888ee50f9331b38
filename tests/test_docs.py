"""The README stays short and the documentation site holds everything the README used to.

``tox -e docs`` builds the site with ``mkdocs build --strict`` (every link and reference
resolves); these tests check what a build cannot: that nothing was lost when the README was
cut down to a page, and that the README's own links land on documentation pages.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"

#: The README's headings before it was cut down (``git show HEAD:README.md | grep '^##'``
#: just before the cut): each of these sections now lives on a documentation page.
FORMER_README_HEADINGS = [
    "Quick start",
    "Install",
    "Use",
    "Flask",
    "Bottle",
    "Pyramid",
    "Django",
    "ASGI: Starlette and FastAPI",
    "What your app sees",
    "Supported versions",
    "WeChat's server APIs",
    "Access tokens",
    "Checking a session",
    "session_key: one current key per user",
    "Phone numbers",
    "Decrypting user data and checking signatures",
    "Configuration",
    "The HTTP contract",
    "Log in",
    "Call your API",
    "Log out",
    "HEAD, OPTIONS and near misses",
    "Errors",
    "Browsers and web-view",
    "The built-in policy: `cors_origins`",
    "With your framework's CORS layer: which order works",
    "The `3rd_session` header caveat",
    "Compatibility, as measured",
    "Behind nginx",
    "Deployment",
    "The mini-program side",
    "Wafer clients",
    "Stores",
    "Many machines: Redis",
    "The command line",
    "Testing your app",
    "Security",
    "Soak",
    "Logging",
    "Operations: metrics, traces, events, login rate limits",
    "Benchmarks",
    "Architecture",
    "Development",
]

#: The README's quick start: these two commands, exactly.
QUICK_START = (
    "scripts/demo    # the Flask example + the fake WeChat server, on the default SQLite store",
    "scripts/test    # sets up tox (with tox-uv) and runs the whole test suite",
)


def headings(markdown: str) -> List[str]:
    """The Markdown headings of a page, outside fenced code blocks."""
    found = []
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            found.append(line.lstrip("#").strip())
    return found


def docs_headings() -> Dict[str, List[str]]:
    return {
        str(page.relative_to(DOCS)): headings(page.read_text(encoding="utf-8"))
        for page in sorted(DOCS.rglob("*.md"))
    }


def test_the_readme_fits_on_a_screen() -> None:
    size = len(README.read_bytes())
    assert size < 12 * 1024, f"README.md is {size} bytes; move detail into docs/"


def test_the_readme_keeps_the_two_quick_start_commands() -> None:
    readme = README.read_text(encoding="utf-8")
    for command in QUICK_START:
        assert command in readme, command


@pytest.mark.parametrize("heading", FORMER_README_HEADINGS)
def test_every_former_readme_section_is_on_a_docs_page(heading: str) -> None:
    pages = [page for page, found in docs_headings().items() if heading in found]
    assert pages, f"the README's section {heading!r} is on no page under docs/"


def test_the_readmes_links_into_the_docs_exist() -> None:
    readme = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [target for target in targets if "://" not in target]
    assert any(target.startswith("docs/") for target in local), "the README links into docs/"
    for target in local:
        assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def test_every_docs_page_is_in_the_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in docs_headings():
        assert page.startswith("_ext/") or f" {page}" in config, (
            f"{page} is not in mkdocs.yml's nav"
        )


def test_the_reference_documents_every_public_module() -> None:
    reference = "\n".join(
        page.read_text(encoding="utf-8") for page in (DOCS / "reference").glob("*.md")
    )
    for module in (
        "wxmiddleware",
        "wxmiddleware.wsgi",
        "wxmiddleware.asgi",
        "wxmiddleware.config",
        "wxmiddleware.errors",
        "wxmiddleware.session",
        "wxmiddleware.stores",
        "wxmiddleware.stores.sqlite",
        "wxmiddleware.stores.redis",
        "wxmiddleware.wechat.api",
        "wxmiddleware.wechat.aio_api",
        "wxmiddleware.crypto",
        "wxmiddleware.testing",
        "wxmiddleware.integrations.flask",
        "wxmiddleware.integrations.bottle",
        "wxmiddleware.integrations.pyramid",
        "wxmiddleware.integrations.django",
        "wxmiddleware.integrations.drf",
        "wxmiddleware.integrations.fastapi",
        "wxmiddleware.observe",
        "wxmiddleware.observers.prometheus",
        "wxmiddleware.observers.otel",
    ):
        assert re.search(rf"^::: {re.escape(module)}$", reference, re.MULTILINE), module


def test_the_included_files_exist() -> None:
    for page in DOCS.rglob("*.md"):
        for path in re.findall(
            r"^<!-- include: (\S+) -->$", page.read_text(encoding="utf-8"), re.M
        ):
            assert (ROOT / path).is_file(), f"{page.name} includes {path}"
