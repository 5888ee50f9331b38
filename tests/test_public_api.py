"""The top-level names: what the README and the docs import exists, and importing it stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import wxmiddleware
from wxmiddleware import WxSession, errors, session_of

ROOT = Path(__file__).resolve().parent.parent
IO_LIBRARIES = "{'requests', 'urllib3', 'sqlite3', 'httpx', 'aiohttp', 'redis'}"


def test_every_public_name_resolves() -> None:
    for name in wxmiddleware.__all__:
        assert getattr(wxmiddleware, name) is not None, name
    assert sorted(dir(wxmiddleware)) == sorted(wxmiddleware.__all__)


def test_the_error_classes_users_catch_are_exported() -> None:
    # What WxConfig, WxApi/AsyncWxApi, the stores and wxmiddleware.crypto raise to the app;
    # the ones only the middleware answers (405, 415, ...) stay in wxmiddleware.errors.
    for name in (
        "ConfigError",
        "WxError",
        "BadRequest",
        "InvalidCode",
        "InvalidSession",
        "UserBlocked",
        "RateLimited",
        "UpstreamError",
        "UpstreamBusy",
        "UpstreamTimeout",
        "UpstreamUnreachable",
        "StoreUnavailable",
    ):
        assert getattr(wxmiddleware, name) is getattr(errors, name), name
    assert issubclass(wxmiddleware.AccessTokenRejected, errors.UpstreamError)
    assert issubclass(wxmiddleware.DecryptError, errors.WxError)


@pytest.mark.parametrize(
    "page",
    ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))],
)
def test_the_readme_and_docs_import_only_public_top_level_names(page: str) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    imported = set()
    for names in re.findall(r"^from wxmiddleware import \(?([^)\n]+)", text, re.MULTILINE):
        imported.update(name.strip() for name in names.split(",") if name.strip())
    if page == "README.md":
        assert imported, "the README imports from wxmiddleware"
    assert imported <= set(wxmiddleware.__all__), imported - set(wxmiddleware.__all__)
    # What the docs tell users to import lives at the top level, not in a private module.
    assert "from wxmiddleware.stores.aio import open_async_store" not in text
    assert "from wxmiddleware.errors import" not in text


def test_importing_the_package_and_the_core_loads_no_io_library() -> None:
    for module in ("wxmiddleware", "wxmiddleware.core"):
        loaded = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import {module}, sys; print(sorted(m for m in sys.modules"
                f" if m.split('.')[0] in {IO_LIBRARIES}))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert loaded.stdout.strip() == "[]", (module, loaded.stdout)


def test_session_of_reads_every_kind_of_request() -> None:
    session = WxSession("o-alice", "sk", None, 0.0, 1.0)
    attached = {"wxmiddleware.session": session}
    assert session_of(attached) is session  # an environ or a scope
    assert session_of(SimpleNamespace(scope=attached)) is session  # Starlette, Django ASGI
    assert session_of(SimpleNamespace(environ=attached)) is session  # Flask, Bottle, Pyramid
    assert session_of(SimpleNamespace(META=attached)) is session  # Django WSGI
    assert session_of(SimpleNamespace(scope={"wxmiddleware.session": None})) is None
    assert session_of(SimpleNamespace(environ={})) is None  # a public path
