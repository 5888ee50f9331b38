"""The compatibility matrix: which server passes which header form to which example.

The e2e suite asserts every row against a real server; ``test_docs_table_matches`` checks
that the table in ``docs/header-caveat.md`` is exactly :func:`render_table` of it.
``python -m tests.e2e.compat`` prints the table.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple


class Server(NamedTuple):
    name: str
    kind: str  # "wsgi" or "asgi"
    passes_underscore: bool


SERVERS: Dict[str, Server] = {
    "gunicorn-sync": Server("gunicorn (sync workers)", "wsgi", False),
    "gunicorn-gthread": Server("gunicorn (gthread workers)", "wsgi", False),
    "waitress": Server("waitress", "wsgi", False),
    "werkzeug": Server("werkzeug dev server", "wsgi", False),
    # ASGI servers hand the raw header list over; the middleware reads it before any framework.
    "uvicorn": Server("uvicorn", "asgi", True),
    "hypercorn": Server("hypercorn", "asgi", True),
}

#: Example module -> (framework label, kind, attribute).
EXAMPLES: Dict[str, tuple] = {
    "flask_app": ("Flask", "wsgi", "app"),
    "bottle_app": ("Bottle", "wsgi", "app"),
    "pyramid_app": ("Pyramid", "wsgi", "app"),
    "django_app": ("Django", "wsgi", "app"),
    "django_app:asgi": ("Django (ASGI)", "asgi", "asgi"),
    "starlette_app": ("Starlette", "asgi", "app"),
    "fastapi_app": ("FastAPI", "asgi", "app"),
}

TABLE_START = "<!-- compat-table:start -->"
TABLE_END = "<!-- compat-table:end -->"


def combinations() -> List[tuple]:
    """Every (example, server) pair the e2e suite runs."""
    return [
        (example, server)
        for example, (_, kind, _) in EXAMPLES.items()
        for server, spec in SERVERS.items()
        if spec.kind == kind
    ]


def render_table() -> str:
    """The compatibility table of ``docs/header-caveat.md``, framework by server by header form."""
    lines = [
        "| framework | server | `3rd-session` | `3rd_session` |",
        "| --- | --- | --- | --- |",
    ]
    for example, server in combinations():
        spec = SERVERS[server]
        underscore = (
            "passes" if spec.passes_underscore else "dropped by the server (401 with a hint)"
        )
        lines.append(f"| {EXAMPLES[example][0]} | {spec.name} | passes | {underscore} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_table())
