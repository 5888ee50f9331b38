"""DRF: WxSessionAuthentication with IsAuthenticated, on the Django example, and its
drf-spectacular scheme."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Iterator

import pytest

from wxmiddleware.testing import FakeWeChat

from .support import assert_refused

pytest.importorskip("rest_framework")
webtest = pytest.importorskip("webtest")


@pytest.fixture
def example(
    load_example: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    monkeypatch.setenv("WX_OPTIONAL_PATHS", "/api/open/*")
    module = load_example("django_app")  # configures Django: imports of its parts come after
    from django.test import override_settings
    from django.urls import clear_url_caches, path
    from rest_framework.authentication import BasicAuthentication
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

    class BasicFirst(Me):
        authentication_classes = (BasicAuthentication, WxSessionAuthentication)

    module.urlpatterns += [
        path("api/drf/me", Me.as_view()),
        path("api/open/me", Me.as_view()),
        path("api/open/any", Open.as_view()),
        path("api/open/basic-first", BasicFirst.as_view()),
    ]
    clear_url_caches()
    handler = {"EXCEPTION_HANDLER": "wxmiddleware.integrations.drf.exception_handler"}
    with override_settings(REST_FRAMEWORK=handler):
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


def test_without_a_session_drf_answers_the_middlewares_401(example: ModuleType) -> None:
    client = webtest.TestApp(example.app)
    # On an optional path the middleware lets the request through; IsAuthenticated refuses
    # it with the middleware's own 401: its JSON body and WWW-Authenticate, not DRF's
    # {"detail": ...} (nor DRF's 403 without a challenge).
    unknown = {"3rd-session": "expired-or-unknown"}
    for headers in ({}, unknown):
        response = client.get("/api/open/me", headers=headers, expect_errors=True)
        assert_refused(response.status_int, dict(response.headers), response.json)
        assert response.headers["WWW-Authenticate"] == 'WxSession realm="wxmiddleware"'
        assert response.headers["Cache-Control"] == "no-store"
    # Byte for byte what the middleware answers an unknown token on a protected path.
    refused = client.get("/api/drf/me", headers=unknown, expect_errors=True)
    assert_refused(refused.status_int, dict(refused.headers), refused.json)
    assert client.get("/api/open/me", headers=unknown, expect_errors=True).body == refused.body


def test_another_first_authentication_class_keeps_drfs_answer(example: ModuleType) -> None:
    """The handler answers only for WxSessionAuthentication: a view whose first class is
    another gets DRF's own 401, with that class's challenge."""
    response = webtest.TestApp(example.app).get("/api/open/basic-first", expect_errors=True)
    assert response.status_int == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert set(response.json) == {"detail"}


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
