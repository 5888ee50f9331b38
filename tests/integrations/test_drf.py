"""DRF: WxSessionAuthentication with IsAuthenticated, on the Django example, and its
drf-spectacular scheme."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Iterator

import pytest

from wxmiddleware.testing import FakeWeChat

pytest.importorskip("rest_framework")
webtest = pytest.importorskip("webtest")


@pytest.fixture
def example(
    load_example: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    monkeypatch.setenv("WX_OPTIONAL_PATHS", "/api/open/*")
    module = load_example("django_app")  # configures Django: imports of its parts come after
    from django.urls import clear_url_caches, path
    from rest_framework.permissions import AllowAny, IsAuthenticated
    from rest_framework.renderers import JSONRenderer
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from wxmiddleware.integrations.drf import WxSessionAuthentication

    class Me(APIView):
        authentication_classes = (WxSessionAuthentication,)
        permission_classes = (IsAuthenticated,)
        renderer_classes = (JSONRenderer,)

        def get(self, request: Any) -> Response:
            """The caller's Django user and openid."""
            return Response(
                {"username": request.user.get_username(), "openid": request.auth.openid}
            )

        def post(self, request: Any) -> Response:
            """DRF views are CSRF-exempt unless SessionAuthentication says otherwise."""
            return Response({"note": request.data["note"]}, status=201)

    class Open(Me):
        permission_classes = (AllowAny,)

        def get(self, request: Any) -> Response:
            return Response({"authenticated": request.user.is_authenticated})

    module.urlpatterns += [
        path("api/drf/me", Me.as_view()),
        path("api/open/me", Me.as_view()),
        path("api/open/any", Open.as_view()),
    ]
    clear_url_caches()
    yield module
    clear_url_caches()


def test_is_authenticated_with_a_wechat_session(
    example: ModuleType, fake_wechat: FakeWeChat
) -> None:
    client = webtest.TestApp(example.app)
    token = client.post_json("/wx/login", {"code": fake_wechat.issue_code("alice")}).json
    headers = {"3rd-session": token["3rd_session"]}
    openid = fake_wechat.openid_for("alice")
    for path in ("/api/drf/me", "/api/open/me"):
        assert client.get(path, headers=headers).json == {
            "username": f"wx_{openid}",
            "openid": openid,
        }
    posted = client.post_json("/api/drf/me", {"note": "hi"}, headers=headers)
    assert (posted.status_int, posted.json) == (201, {"note": "hi"})
    assert client.get("/api/open/any", headers=headers).json == {"authenticated": True}
    assert client.get("/api/open/any").json == {"authenticated": False}


def test_without_a_session_drf_answers_401_with_the_challenge(example: ModuleType) -> None:
    client = webtest.TestApp(example.app)
    # On an optional path the middleware lets the request through; IsAuthenticated refuses
    # it with DRF's 401 and the middleware's WWW-Authenticate (not DRF's 403).
    for headers in ({}, {"3rd-session": "expired-or-unknown"}):
        response = client.get("/api/open/me", headers=headers, expect_errors=True)
        assert response.status_int == 401
        assert response.headers["WWW-Authenticate"] == 'WxSession realm="wxmiddleware"'
        assert response.content_type == "application/json"
    # On a protected path the middleware answers first, with its own JSON.
    refused = client.get("/api/drf/me", expect_errors=True)
    assert refused.status_int == 401 and refused.json["error"] == "invalid_session"


def test_drf_spectacular_declares_the_header_scheme(example: ModuleType) -> None:
    pytest.importorskip("drf_spectacular")
    from django.test import override_settings
    from drf_spectacular.generators import SchemaGenerator

    with override_settings(
        REST_FRAMEWORK={"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
    ):
        schema = SchemaGenerator().get_schema(request=None, public=True)
    assert schema["components"]["securitySchemes"]["wxSession"] == {
        "type": "apiKey",
        "in": "header",
        "name": "3rd-session",
        "description": "The 3rd_session token from the login path.",
    }
    assert {"wxSession": []} in schema["paths"]["/api/drf/me"]["get"]["security"]
