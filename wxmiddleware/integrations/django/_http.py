"""The middleware's own answers as Django responses."""

from __future__ import annotations

from django.http import HttpResponse

from ...core import Response


def as_http_response(answer: Response) -> HttpResponse:
    """``answer`` (status, headers, body bytes) as a Django ``HttpResponse``, byte for byte:
    the same status, headers and body the WSGI and ASGI middleware send."""
    response = HttpResponse(answer.body, status=answer.status)
    # HttpResponse starts with an HTML Content-Type; a 204 answer has none.
    del response["Content-Type"]
    for name, value in answer.headers:
        response[name] = value
    return response
