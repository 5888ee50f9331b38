"""The filter that keeps secrets, codes and access tokens out of HTTP clients' log records."""

from __future__ import annotations

import logging

import pytest

from wxmiddleware.wechat._redact import RedactQueryFilter, install_redaction


def redacted(message: str, *args: object) -> str:
    record = logging.LogRecord(
        "urllib3.connectionpool", logging.DEBUG, __file__, 1, message, args, None
    )
    assert RedactQueryFilter().filter(record) is True  # redacts, never drops
    return record.getMessage()


@pytest.mark.parametrize(
    "url",
    [
        "http://h/sns/jscode2session?appid=wx1&secret=SECRET&js_code=CODE&grant_type=x",
        "https://h/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=SECRET",
        "https://h/cgi-bin/message/subscribe/send?access_token=SECRET",
        "https://h/wxa/checksession?access_token=SECRET&openid=o&signature=CODE",
        "https://h/wxa/business/getuserphonenumber?access_token=SECRET",
        "https://proxy/prefix/api?x=1&access_token=SECRET&secret=SECRET&js_code=CODE",
    ],
)
def test_queries_are_redacted(url: str) -> None:
    # The URL as an argument, and as urllib3 logs it (a path in the format).
    for line in (
        redacted('HTTP Request: %s %s "%s %d %s"', "GET", url, "HTTP/1.1", 200, "OK"),
        redacted('%s://%s:%s "%s %s %s" %s %s', "https", "h", 443, "POST", url, "HTTP/1.1", 200, 9),
    ):
        assert "SECRET" not in line and "CODE" not in line
        assert "[redacted]" in line


def test_other_messages_are_untouched() -> None:
    assert redacted("GET %s -> %d", "https://h/health?probe=1", 200) == (
        "GET https://h/health?probe=1 -> 200"
    )
    assert redacted("no query at all") == "no query at all"


def test_installed_on_the_clients_loggers() -> None:
    install_redaction()
    install_redaction()
    filters = logging.getLogger("urllib3.connectionpool").filters
    assert sum(isinstance(f, RedactQueryFilter) for f in filters) == 1
