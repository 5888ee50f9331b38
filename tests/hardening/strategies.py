"""Hypothesis strategies for requests a hostile or broken client might send."""

from __future__ import annotations

import json
from typing import Any, List, Tuple

from hypothesis import strategies as st

TOKEN_HEADERS = ["3rd-session", "3rd_session", "X-WX-Skey", "3RD-SESSION", "x-wx-skey"]
#: The Wafer client's login headers, so random requests also take the Wafer login path.
WAFER_LOGIN_HEADERS = ["X-WX-Code", "X-WX-Encrypted-Data", "X-WX-IV", "x_wx_code"]
PATHS = [
    "/wx/login",
    "/wx/logout",
    "/health",
    "/api/me",
    "/wx/login/",
    "/health/../api/me",
    "/health%2F..%2Fapi",
    "/",
    "",
    # GET logins (the property tests allow them): a surrogate's UTF-8 bytes, escaped.
    "/wx/login?code=%ED%A0%80",
    "/wx/login?wxCode=ab%ED%B3%BFcd",
    "/wx/login?code=abc&code=abd",
]

segments = st.sampled_from(
    ["api", "me", "health", "wx", "login", "logout", "", ".", "..", "%2e%2e", "%2F", "%5C", "a%00"]
)
path_text = st.lists(segments, max_size=5).map(lambda parts: "/" + "/".join(parts))
paths = st.one_of(st.sampled_from(PATHS), path_text)
methods = st.sampled_from(["GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"])
#: A token the property tests store a live session under, so some requests are valid.
LIVE_TOKEN = "L" * 43
#: Text holding a lone surrogate (which hypothesis leaves out of text by default): what a JSON
#: ``"\\ud800"`` escape or a server decoding with ``surrogateescape`` hands the middleware.
#: One surrogate between printable text, so it never pairs up into a valid character.
surrogate_text = st.tuples(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=6),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=6),
).map("".join)
header_values = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=20),
    surrogate_text,
    st.sampled_from(["A" * 43, LIVE_TOKEN, LIVE_TOKEN + "," + LIVE_TOKEN, ""]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["code", "wxCode", "x"]), children, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def deep_json(draw: Any) -> bytes:
    """JSON nested around and past the parser's recursion limit (1000 levels) within the
    4096-byte body limit: objects (``{"": ...``) around arrays (``[[[...]]]``), alone or as
    a login field's value."""
    objects = draw(st.integers(0, 300))
    arrays = draw(st.integers(900 - objects, (4000 - 5 * objects) // 2))
    nested = b'{"":' * objects + b"[" * arrays + b"]" * arrays + b"}" * objects
    field = draw(st.sampled_from([None, "code", "wxCode", "other"]))
    return nested if field is None else b'{"' + field.encode() + b'": ' + nested + b"}"


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.text(max_size=60).map(lambda code: json.dumps({"code": code}).encode()),
    st.text(max_size=60).map(lambda code: ("code=" + code).encode("utf-8", "surrogatepass")),
    # json.dumps writes a lone surrogate as its "\\udXXX" escape: valid JSON, invalid text.
    surrogate_text.map(lambda code: json.dumps({"code": code}).encode()),
    surrogate_text.map(lambda code: json.dumps({"wxCode": code}).encode()),
    surrogate_text.map(lambda code: ("code=" + code).encode("utf-8", "surrogatepass")),
    deep_json(),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/json; charset=latin-1",
        "",
        "multipart/form-data",
    ]
)


@st.composite
def requests(draw: Any) -> Tuple[str, str, List[Tuple[str, str]], bytes]:
    """A method, a raw path, headers and a body."""
    headers: List[Tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(TOKEN_HEADERS + WAFER_LOGIN_HEADERS))
        headers.append((name, draw(header_values)))
    content_type = draw(content_types)
    if content_type:
        headers.append(("Content-Type", content_type))
    return draw(methods), draw(paths), headers, draw(bodies)
