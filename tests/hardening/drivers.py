"""Send one raw request straight to a wrapped app and report what came back.

The driver builds the WSGI environ (or ASGI scope) by hand, so a test can send what no
well-behaved client library would: duplicate headers, control bytes, lying lengths.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import unquote

Headers = Sequence[Tuple[str, str]]


@dataclass
class Answer:
    status: int
    headers: Dict[str, str]
    body: bytes
    app_ran: bool

    def json(self) -> Any:
        return json.loads(self.body)


class RecordingApp:
    """The wrapped app: records each call and answers 200 with the openid it was given."""

    def __init__(self) -> None:
        self.calls: List[Dict[str, Any]] = []

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        self.calls.append(environ)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"openid": environ.get("wxmiddleware.openid")}).encode()]


def wsgi_request(
    app: Callable[..., Any],
    recorder: RecordingApp,
    method: str,
    raw_path: str,
    headers: Headers = (),
    body: bytes = b"",
    chunked: bool = False,
) -> Answer:
    """Call a WSGI app the way gunicorn would: repeated headers joined with commas."""
    path, _, query = raw_path.partition("?")
    environ: Dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote(path, encoding="latin-1"),
        "RAW_URI": raw_path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if chunked:
        environ["wsgi.input_terminated"] = True
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    elif body or method in ("POST", "PUT", "PATCH"):
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if key == "CONTENT_LENGTH":
            environ["CONTENT_LENGTH"] = value
            continue
        key = "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    status_holder: List[str] = []
    header_holder: List[Tuple[str, str]] = []

    def start_response(
        status: str, response_headers: List[Tuple[str, str]], exc_info: Optional[Any] = None
    ) -> None:
        status_holder.append(status)
        header_holder.extend(response_headers)

    before = len(recorder.calls)
    result = app(environ, start_response)
    try:
        body_out = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return Answer(
        status=int(status_holder[0].split()[0]),
        headers={name.lower(): value for name, value in header_holder},
        body=body_out,
        app_ran=len(recorder.calls) > before,
    )
