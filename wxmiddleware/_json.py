"""JSON from clients and platforms, read with a bound on its nesting.

``json.loads`` recurses once per level of nesting: a few kilobytes of ``[[[[`` take it to
the interpreter's recursion limit, where it raises ``RecursionError`` deep in the stack, and
anything that runs there meanwhile (a garbage collection calling finalizers, a warning)
may fail in turn. No document this package reads nests more than a few levels, so a
document nested deeper than :data:`MAX_DEPTH` is refused before it is parsed.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["MAX_DEPTH", "TooDeep", "loads"]

#: The deepest nesting of arrays and objects read: far below the recursion limit, far above
#: any real document (WeChat's user info nests 2 levels).
MAX_DEPTH = 100

# A JSON string (its escapes included): brackets inside one do not nest anything.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


class TooDeep(ValueError):
    """A document nested deeper than :data:`MAX_DEPTH` (a ``ValueError``, as every other
    way a document fails to parse is)."""


def loads(
    text: str,
    object_pairs_hook: Optional[Callable[[List[Tuple[str, Any]]], Dict[str, Any]]] = None,
) -> Any:
    """``json.loads(text)``, with ``object_pairs_hook`` when given; raises ``ValueError``
    (:class:`TooDeep` for nesting past :data:`MAX_DEPTH`) for a document that is not JSON."""
    brackets = _NOT_BRACKETS.sub("", _STRING.sub("", text))
    # Only a document with more brackets than the bound can nest past it.
    if len(brackets) > MAX_DEPTH and max(accumulate(_STEP[b] for b in brackets)) > MAX_DEPTH:
        raise TooDeep(f"JSON nested deeper than {MAX_DEPTH} levels")
    return json.loads(text, object_pairs_hook=object_pairs_hook)
