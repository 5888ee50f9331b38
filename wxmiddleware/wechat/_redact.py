"""Keep the app secret, login codes and access tokens out of HTTP clients' own log records.

``params=`` keeps the query well-formed, but urllib3 (at DEBUG) logs the full request URL,
query string included: jscode2session's and ``/cgi-bin/token``'s queries hold the secret, and
every other server API's query holds the access token. aiohttp's loggers name no request URL
(the async client's exceptions do: it passes on their class names only).
"""

from __future__ import annotations

import logging
import re

# Paths of any depth under /cgi-bin/ and /wxa/ (/wxa/business/getuserphonenumber).
_SENSITIVE_QUERY = re.compile(r"(/sns/jscode2session|/cgi-bin(?:/\w+)+|/wxa(?:/\w+)+)\?[^\s\"']*")
# Whatever the path (an API added later, a proxy's path prefix), these values never show.
_SENSITIVE_PARAMETER = re.compile(r"([?&](?:access_token|secret|js_code)=)[^&\s\"']*")
_CLIENT_LOGGERS = ("urllib3.connectionpool",)


class RedactQueryFilter(logging.Filter):
    """Replace the query string of WeChat API URLs in a log record with ``?[redacted]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's business
            return True
        if "?" not in message:
            return True
        redacted = _SENSITIVE_PARAMETER.sub(r"\1[redacted]", message)
        redacted = _SENSITIVE_QUERY.sub(r"\1?[redacted]", redacted)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


_FILTER = RedactQueryFilter()


def install_redaction() -> None:
    """Attach the filter to the HTTP clients' loggers (idempotent)."""
    for name in _CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
