"""Malformed requests and the status each must get, shared by the WSGI and ASGI suites."""

from __future__ import annotations

import json
from typing import List, NamedTuple, Tuple

JSON = ("Content-Type", "application/json")
FORM = ("Content-Type", "application/x-www-form-urlencoded")
VALID_LOOKING = "A" * 43


class Case(NamedTuple):
    id: str
    method: str
    path: str
    headers: Tuple[Tuple[str, str], ...]
    body: bytes
    status: int
    chunked: bool = False
    #: The answer also carries Wafer's ``"code": -1`` (and no other case's answer has a code).
    wafer: bool = False


def _login(case_id: str, body: bytes, status: int = 400, *headers: Tuple[str, str]) -> Case:
    return Case(case_id, "POST", "/wx/login", headers or (JSON,), body, status)


def _wafer_login(case_id: str, status: int, *headers: Tuple[str, str], method: str = "GET") -> Case:
    return Case(case_id, method, "/wx/login", headers, b"", status, wafer=True)


def _me(
    case_id: str, status: int, *headers: Tuple[str, str], path: str = "/api/me", wafer: bool = False
) -> Case:
    return Case(case_id, "GET", path, headers, b"", status, wafer=wafer)


MALFORMED: List[Case] = [
    # Bodies
    _login("empty-body", b""),
    _login("truncated-json", b'{"code": "abc'),
    _login("json-array", b'["abc"]'),
    _login("json-string", b'"abc"'),
    _login("json-number", b"42"),
    _login("json-null", b"null"),
    _login("non-utf8", b'{"code": "\xff\xfe"}'),
    _login("utf16-bom", '{"code": "abc"}'.encode("utf-16")),
    _login("code-missing", b'{"other": "x"}'),
    _login("code-empty", b'{"code": ""}'),
    _login("code-null", b'{"code": null}'),
    _login("code-number", b'{"code": 12345}'),
    _login("code-bool", b'{"code": true}'),
    _login("code-object", b'{"code": {"a": 1}}'),
    _login("code-list", b'{"code": ["a"]}'),
    _login("code-huge", json.dumps({"code": "x" * 3000}).encode()),
    _login("code-control", b'{"code": "ab\\u0000cd"}'),
    _login("code-newline", b'{"code": "ab\\ncd"}'),
    _login("code-and-alias-differ", b'{"code": "a", "wxCode": "b"}'),
    # A lone surrogate is valid JSON ("\ud800") and invalid text: 400, not a 500 later.
    _login("code-lone-surrogate", b'{"code": "\\ud800"}'),
    _login("code-low-surrogate-inside", b'{"code": "ab\\udfffcd"}'),
    _login("code-high-surrogate-at-end", b'{"code": "abc\\ud83d"}'),
    _login("alias-lone-surrogate", b'{"wxCode": "\\udc80"}'),
    _login("code-and-alias-surrogates", b'{"code": "\\ud800", "wxCode": "\\ud800"}'),
    _login("form-surrogate-escaped", b"code=%ED%A0%80", 400, FORM),
    _login("form-surrogate-raw", b"code=\xed\xa0\x80", 400, FORM),
    _login("form-alias-surrogate", b"wxCode=ab%ED%B3%BF", 400, FORM),
    # Nesting past the parser's recursion limit raises RecursionError, not ValueError.
    _login("deep-nesting-code", b'{"code": ' + b"[" * 1500 + b"]" * 1500 + b"}"),
    _login("deep-nesting-alias", b'{"wxCode": ' + b"[" * 1500 + b"]" * 1500 + b"}"),
    _login("deep-nesting-other-field", b'{"x": ' + b"[" * 1500 + b"]" * 1500 + b"}"),
    _login("deep-nesting-top", b"[" * 2000 + b"]" * 2000),
    _login(
        "deep-nesting-json-charset",
        b'{"code": ' + b"[" * 1500 + b"]" * 1500 + b"}",
        400,
        ("Content-Type", "application/json; charset=utf-8"),
    ),
    Case(
        "deep-nesting-chunked",
        "POST",
        "/wx/login",
        (JSON,),
        b'{"code": ' + b"[" * 1500 + b"]" * 1500 + b"}",
        400,
        True,
    ),
    # JSON under another content type (curl -d sends a form): 400, naming the header to send.
    _login("form-with-json-body", b'{"code": "abc"}', 400, FORM),
    _login("form-with-json-body-spaced", b'  \n{"code": "abc"}', 400, FORM),
    _login("form-with-json-array", b'["abc"]', 400, FORM),
    _login("form-with-deep-json", b'{"code": ' + b"[" * 1500 + b"]" * 1500 + b"}", 400, FORM),
    _login("text-plain-with-json-body", b'{"code": "abc"}', 400, ("Content-Type", "text/plain")),
    _login("body-over-limit", json.dumps({"code": "x", "pad": "y" * 10000}).encode()),
    Case("chunked-over-limit", "POST", "/wx/login", (JSON,), b"{" + b" " * 20000 + b"}", 400, True),
    _login("form-duplicate-code", b"code=a&code=b", 400, FORM),
    _login("form-non-utf8", b"code=%ff%fe", 400, FORM),
    _login("form-empty-code", b"code=", 400, FORM),
    _login("text-plain", b"code=abc", 415, ("Content-Type", "text/plain")),
    _login("multipart", b"--x\r\n", 415, ("Content-Type", "multipart/form-data; boundary=x")),
    _login("xml", b"<code>abc</code>", 415, ("Content-Type", "application/xml")),
    _login("bad-content-length", b'{"code": "abc"}', 400, JSON, ("Content-Length", "abc")),
    _login("negative-content-length", b'{"code": "abc"}', 400, JSON, ("Content-Length", "-5")),
    _login("huge-content-length", b'{"code": "abc"}', 400, JSON, ("Content-Length", "99999999")),
    # str.isdigit() is true for "²", which int() refuses.
    _login("superscript-content-length", b'{"code": "abc"}', 400, JSON, ("Content-Length", "²")),
    # Methods
    Case("login-get", "GET", "/wx/login?code=abc", (), b"", 405),
    Case("login-put", "PUT", "/wx/login", (JSON,), b'{"code": "abc"}', 405),
    Case("login-delete", "DELETE", "/wx/login", (), b"", 405),
    Case("login-head", "HEAD", "/wx/login", (), b"", 405),
    Case("login-options", "OPTIONS", "/wx/login", (), b"", 405),
    Case("logout-get", "GET", "/wx/logout", (), b"", 405),
    Case("logout-head", "HEAD", "/wx/logout", (), b"", 405),
    Case("logout-without-token", "POST", "/wx/logout", (), b"", 401),
    # Wafer logins: the code in X-WX-Code, the user info in X-WX-Encrypted-Data and X-WX-IV
    _wafer_login("wafer-code-empty", 400, ("X-WX-Code", "")),
    _wafer_login("wafer-code-huge", 400, ("X-WX-Code", "x" * 3000)),
    _wafer_login("wafer-code-control", 400, ("X-WX-Code", "ab\x01cd")),
    _wafer_login("wafer-code-twice", 400, ("X-WX-Code", "a"), ("X-WX-Code", "b")),
    _wafer_login(
        "wafer-data-without-iv", 400, ("X-WX-Code", "abc"), ("X-WX-Encrypted-Data", "QQ==")
    ),
    _wafer_login("wafer-iv-without-data", 400, ("X-WX-Code", "abc"), ("X-WX-IV", "QQ==")),
    _wafer_login(
        "wafer-data-huge",
        400,
        ("X-WX-Code", "abc"),
        ("X-WX-Encrypted-Data", "A" * 5000),
        ("X-WX-IV", "A" * 24),
    ),
    _wafer_login(
        "wafer-data-twice",
        400,
        ("X-WX-Code", "abc"),
        ("X-WX-IV", "QQ=="),
        ("X-WX-Encrypted-Data", "QQ=="),
        ("X-WX-Encrypted-Data", "Qg=="),
    ),
    _wafer_login("wafer-put", 405, ("X-WX-Code", "abc"), method="PUT"),
    _wafer_login("wafer-head", 405, ("X-WX-Code", "abc"), method="HEAD"),
    Case(
        "wafer-post-bad-code-ignores-body",
        "POST",
        "/wx/login",
        (JSON, ("X-WX-Code", "")),
        b'{"code": "abc"}',
        400,
        wafer=True,
    ),
    # Tokens
    _me("no-token", 401),
    _me("empty-token", 401, ("3rd-session", "")),
    _me("unknown-token", 401, ("3rd-session", VALID_LOOKING)),
    _me("non-ascii-token", 401, ("3rd-session", "tökén" * 9)),
    _me("token-with-space", 401, ("3rd-session", "abc def")),
    _me("token-with-tab", 401, ("3rd-session", "abc\tdef")),
    _me("token-with-control", 401, ("3rd-session", "abc\x01def")),
    _me("token-oversized", 401, ("3rd-session", "A" * 5000)),
    _me("token-semicolon", 401, ("3rd-session", "abc;def")),
    _me("conflicting-headers", 400, ("3rd-session", VALID_LOOKING), ("X-WX-Skey", "B" * 43)),
    _me("conflicting-duplicates", 400, ("3rd-session", VALID_LOOKING), ("3rd-session", "B" * 43)),
    _me("agreeing-duplicates", 401, ("3rd-session", VALID_LOOKING), ("3rd-session", VALID_LOOKING)),
    # A Wafer client re-logs in on "code": -1, so its 401s carry it; its 400s do not.
    _me("wafer-unknown-skey", 401, ("X-WX-Skey", VALID_LOOKING), wafer=True),
    _me("wafer-malformed-skey", 401, ("X-WX-Skey", "abc def"), wafer=True),
    _me("wafer-empty-skey", 401, ("X-WX-Skey", ""), wafer=True),
    _me(
        "wafer-skey-with-unknown-token",
        401,
        ("X-WX-Skey", VALID_LOOKING),
        ("3rd-session", VALID_LOOKING),
        wafer=True,
    ),
    _me("head-protected", 401, path="/api/me"),
    Case("head-without-token", "HEAD", "/api/me", (), b"", 401),
    Case("options-without-token", "OPTIONS", "/api/me", (), b"", 401),
    # Paths around the login and public paths
    _me("login-trailing-slash", 404, path="/wx/login/"),
    _me("login-uppercase", 401, path="/WX/LOGIN"),
    _me("public-traversal", 401, path="/health/../api/me"),
    _me("public-dot-segment", 401, path="/health/./"),
    _me("public-encoded-slash", 401, path="/health%2F..%2Fapi%2Fme"),
    _me("public-encoded-traversal", 401, path="/health/%2e%2e/api/me"),
    _me("public-double-slash", 401, path="//health"),
    _me("public-trailing-slash", 401, path="/health/"),
    _me("public-backslash", 401, path="/health\\..\\api\\me"),
    _me("public-encoded-backslash", 401, path="/health%5C..%5Capi"),
    _me("public-null-byte", 401, path="/health%00"),
]
