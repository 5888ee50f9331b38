"""The bounded JSON reader: nesting past MAX_DEPTH is a ValueError before the parser recurses."""

from __future__ import annotations

import json

import pytest

from wxmiddleware import _json


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_up_to_the_bound_is_read() -> None:
    text = nested(_json.MAX_DEPTH)
    assert _json.loads(text) == json.loads(text)


@pytest.mark.parametrize("depth", [_json.MAX_DEPTH + 1, 5000, 100_000])
def test_nesting_past_the_bound_is_a_value_error(depth: int) -> None:
    with pytest.raises(ValueError, match="nested deeper"):
        _json.loads('{"code": ' + nested(depth) + "}")


def test_brackets_inside_strings_nest_nothing() -> None:
    text = '{"code": "' + "[{" * 500 + '", "escaped": "\\"[[["}'
    assert _json.loads(text)["code"] == "[{" * 500


def test_the_object_pairs_hook_is_used() -> None:
    assert _json.loads('{"a": 1}', object_pairs_hook=lambda pairs: {"pairs": pairs}) == {
        "pairs": [("a", 1)]
    }
