"""A griffe extension for the docs site: the docstrings' Sphinx roles become cross-references.

The package's docstrings are written for Sphinx (``:class:`~wxmiddleware.errors.ConfigError```,
``:meth:`release_lock```). mkdocstrings renders Markdown, where such a role would show as
literal text, so each one is rewritten, once the package is loaded, into an optional autorefs
reference: a link when the target is documented on the site, plain code otherwise (a private
module, the standard library). Nothing in the package changes.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):"
    r"`(?:(?P<title>[^`<]+?)\s*<(?P<target>[^`>]+)>|(?P<plain>[^`]+))`"
)


class SphinxRoles(griffe.Extension):
    """Rewrite the Sphinx roles of every docstring of the package when it is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        collection = loader.modules_collection
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = ROLE.sub(
                    lambda match, obj=obj: _reference(match, obj, collection),
                    obj.docstring.value,
                )


def _walk(obj: griffe.Object) -> Any:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def _reference(match: re.Match[str], obj: griffe.Object, collection: Any) -> str:
    target = (match["target"] or match["plain"]).strip()
    short = target.startswith("~")
    target = target.lstrip("~").rstrip("()")
    title = match["title"] or (target.lstrip(".").rsplit(".", 1)[-1] if short else target)
    identifier = _resolve(target, obj, collection)
    return (
        f'<autoref identifier="{html.escape(identifier)}" optional>'
        f"<code>{html.escape(title)}</code></autoref>"
    )


def _exists(path: str, collection: Any) -> bool:
    try:
        collection[path]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    return True


def _resolve(target: str, obj: griffe.Object, collection: Any) -> str:
    """The full path of ``target`` as named in ``obj``'s docstring, or ``target`` itself."""
    candidates = []
    module = obj.module
    if target.startswith("."):
        for scope in (module, module.parent):
            if scope is not None:
                candidates.append(scope.path + target)
    else:
        candidates.append(target)
        scope: griffe.Object | None = obj
        while scope is not None:  # a member of the class, a name the module imports
            candidates.append(f"{scope.path}.{target}")
            head, _, rest = target.partition(".")
            try:
                resolved = scope.resolve(head)
            except Exception:  # griffe raises several kinds: then it is not a name here
                resolved = ""
            if resolved:
                candidates.append(f"{resolved}.{rest}" if rest else resolved)
            scope = scope.parent
    for candidate in candidates:
        if _exists(candidate, collection):
            return candidate
    return target
