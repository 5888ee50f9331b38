"""Keep the app secret and login codes out of HTTP clients' own log records.

``params=`` keeps the query well-formed, but urllib3 (at DEBUG) and httpx (at INFO) log the
full request URL, query string included, and jscode2session's query holds the secret.
"""

from __future__ import annotations

import logging
import re

_SENSITIVE_QUERY = re.compile(r"(/sns/jscode2session|/cgi-bin/\w+|/wxa/\w+)\?[^\s\"']*")
_CLIENT_LOGGERS = ("urllib3.connectionpool", "httpx")


class RedactQueryFilter(logging.Filter):
    """Replace the query string of WeChat API URLs in a log record with ``?[redacted]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's business
            return True
        if "?" in message and _SENSITIVE_QUERY.search(message):
            record.msg = _SENSITIVE_QUERY.sub(r"\1?[redacted]", message)
            record.args = None
        return True


_FILTER = RedactQueryFilter()


def install_redaction() -> None:
    """Attach the filter to the HTTP clients' loggers (idempotent)."""
    for name in _CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
