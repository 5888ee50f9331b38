"""OpenTelemetry traces (issue 21), recorded with the SDK's in-memory exporter: spans for the
login, each WeChat call and each store operation, children of the server span that
opentelemetry-instrumentation-wsgi/-asgi opens, and no secret in any attribute."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from wxmiddleware import WxConfig, WxMiddleware
from wxmiddleware.testing import FakeWeChat

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from wxmiddleware.observers.otel import TracingObserver

SESSION_KEY = "c2Vzc2lvbi1rZXktb2YtdGhlLXRlc3Q="


@pytest.fixture
def traced() -> Iterator[Tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def config(fake: FakeWeChat) -> WxConfig:
    return WxConfig(
        appid=fake.appid, secret=fake.secret, api_base=fake.url, public_paths=("/health",)
    )


def inner_wsgi(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


async def inner_asgi(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class Client:
    """A login, an authenticated request and a failed login through one traced stack."""

    def __init__(self, adapter: str, fake: FakeWeChat, provider: TracerProvider) -> None:
        observer = TracingObserver(provider)
        if adapter == "wsgi":
            from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
            from webtest import TestApp

            from wxmiddleware import MemoryStore

            wrapped = WxMiddleware(
                inner_wsgi, config=config(fake), store=MemoryStore(), observers=[observer]
            )
            self.app = TestApp(OpenTelemetryMiddleware(wrapped, tracer_provider=provider))
            self.asgi = None
        else:
            import httpx
            from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

            from wxmiddleware import AsyncMemoryStore, WxASGIMiddleware

            wrapped_asgi = WxASGIMiddleware(
                inner_asgi, config=config(fake), store=AsyncMemoryStore(), observers=[observer]
            )
            app = OpenTelemetryMiddleware(wrapped_asgi, tracer_provider=provider)
            self.asgi = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            )

    def post(self, path: str, body: Any, headers: Dict[str, str]) -> Tuple[int, bytes]:
        if self.asgi is None:
            reply = self.app.post(
                path,
                json.dumps(body),
                headers={**headers, "Content-Type": "application/json"},
                expect_errors=True,
            )
            return reply.status_int, reply.body
        import anyio

        async def send() -> Any:
            return await self.asgi.post(path, json=body, headers=headers)  # type: ignore[union-attr]

        reply = anyio.run(send)
        return reply.status_code, reply.content

    def get(self, path: str, headers: Dict[str, str]) -> int:
        if self.asgi is None:
            return int(self.app.get(path, headers=headers, expect_errors=True).status_int)
        import anyio

        async def send() -> Any:
            return await self.asgi.get(path, headers=headers)  # type: ignore[union-attr]

        return int(anyio.run(send).status_code)


def named(spans: Tuple[ReadableSpan, ...], prefix: str) -> List[ReadableSpan]:
    return [span for span in spans if span.name.startswith(prefix)]


@pytest.mark.parametrize("adapter", ["wsgi", "asgi"])
def test_spans_nest_under_the_server_span_and_hold_no_secret(
    adapter: str,
    fake_wechat: FakeWeChat,
    traced: Tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = traced
    fake_wechat.session_key_factory = lambda: SESSION_KEY
    client = Client(adapter, fake_wechat, provider)
    code = fake_wechat.issue_code()
    status, body = client.post("/wx/login", {"code": code}, {})
    assert status == 200
    token = json.loads(body)["3rd_session"]
    login_spans = exporter.get_finished_spans()
    (login,) = named(login_spans, "wxmiddleware.login")
    (server,) = [s for s in login_spans if s.parent is None]
    assert login.parent is not None and login.parent.span_id == server.context.span_id
    (call,) = named(login_spans, "WeChat GET /sns/jscode2session")
    assert call.parent is not None and call.parent.span_id == login.context.span_id
    assert call.attributes is not None
    assert call.attributes["http.response.status_code"] == 200
    assert call.attributes["wechat.errcode"] == 0
    assert call.attributes["url.path"] == "/sns/jscode2session"
    stores = named(login_spans, "wxmiddleware.store")
    assert {s.name for s in stores} == {"wxmiddleware.store claim_code", "wxmiddleware.store save"}
    assert all(s.parent is not None and s.parent.span_id == login.context.span_id for s in stores)
    assert (
        login.attributes is not None and login.attributes["wxmiddleware.login.outcome"] == "success"
    )

    exporter.clear()
    assert client.get("/api/me", {"3rd-session": token}) == 200
    request_spans = exporter.get_finished_spans()
    (lookup,) = named(request_spans, "wxmiddleware.store get")
    (server,) = [s for s in request_spans if s.parent is None]
    assert lookup.parent is not None and lookup.parent.span_id == server.context.span_id

    exporter.clear()
    fake_wechat.inject("errcode", errcode=40029)
    bad_code = fake_wechat.issue_code()
    assert client.post("/wx/login", {"code": bad_code}, {})[0] == 401
    spans = exporter.get_finished_spans()
    (call,) = named(spans, "WeChat GET")
    assert call.attributes is not None
    assert call.attributes["wechat.errcode"] == 40029 and call.attributes["wechat.rid"]
    (login,) = named(spans, "wxmiddleware.login")
    assert login.attributes is not None
    assert login.attributes["wxmiddleware.login.outcome"] == "invalid_code"
    assert login.attributes["error.type"] == "invalid_code"
    assert login.status.status_code.name == "ERROR"

    everything = " ".join(
        f"{span.name} {dict(span.attributes or {})} {span.status.description} {span.events}"
        for span in (*exporter.get_finished_spans(), *login_spans, *request_spans)
    )
    for secret in (token, code, bad_code, SESSION_KEY, fake_wechat.secret):
        assert secret not in everything
