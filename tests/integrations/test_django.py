"""The Django integration: WxLoginMiddleware under WSGI and ASGI, WxSessionBackend's users,
Django's auth idioms (request.user, @login_required, LoginRequiredMixin, permissions, the
admin, user_logged_in), wx_login_required and WxLoginRequiredMixin on optional paths, several
mini-programs, and bad input answered as the middleware answers it."""

from __future__ import annotations

import asyncio
import time
from types import ModuleType
from typing import Any, Callable, Dict, Iterator, List, Tuple

import httpx
import pytest

from wxmiddleware.testing import FakeWeChat

from .support import assert_refused, down_store_url

pytest.importorskip("django")
webtest = pytest.importorskip("webtest")

#: The optional paths of the example: ``/feed``, and the views behind wx_login_required.
OPTIONAL_PATHS = "/feed,/open/*"

#: The optional-path views that refuse a request without a session with the 401.
WX_GUARDED = ["/open/decorated", "/open/async-decorated", "/open/mixin", "/open/async-mixin"]


def add_test_views(module: ModuleType) -> None:
    """Add the tests' views to the loaded Django example."""
    from django.contrib.auth.decorators import login_required, permission_required
    from django.contrib.auth.mixins import LoginRequiredMixin
    from django.http import HttpRequest, JsonResponse
    from django.urls import clear_url_caches, path
    from django.views import View

    from wxmiddleware import session_of
    from wxmiddleware.integrations.django.auth import WxLoginRequiredMixin, wx_login_required

    class Mine(LoginRequiredMixin, View):
        def get(self, request: HttpRequest) -> JsonResponse:
            return JsonResponse({"username": request.user.get_username()})

    @permission_required("wxmiddleware.view_wxaccount", raise_exception=True)
    def accounts(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"count": request.user.wx_accounts.count()})

    def feed(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"authenticated": request.user.is_authenticated})

    @login_required
    def secret(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"ok": True})

    def who(request: HttpRequest, user: Any) -> JsonResponse:
        session = session_of(request)
        assert session is not None
        accounts = sorted([account.appid, account.openid] for account in user.wx_accounts.all())
        return JsonResponse(
            {"username": user.get_username(), "appid": session.appid, "accounts": accounts}
        )

    @wx_login_required
    def decorated(request: HttpRequest) -> JsonResponse:
        return who(request, request.user)

    @wx_login_required
    async def async_decorated(request: HttpRequest) -> JsonResponse:
        user = await request.auser()
        return JsonResponse({"username": user.get_username()})

    class Guarded(WxLoginRequiredMixin, View):
        def get(self, request: HttpRequest) -> JsonResponse:
            return who(request, request.user)

    class AsyncGuarded(WxLoginRequiredMixin, View):
        async def get(self, request: HttpRequest) -> JsonResponse:
            user = await request.auser()
            return JsonResponse({"username": user.get_username()})

    module.urlpatterns += [
        path("api/mine", Mine.as_view()),
        path("api/accounts", accounts),
        path("feed", feed),
        path("api/secret", secret),
        path("open/login-required", secret),
        path("open/decorated", decorated),
        path("open/async-decorated", async_decorated),
        path("open/mixin", Guarded.as_view()),
        path("open/async-mixin", AsyncGuarded.as_view()),
    ]
    clear_url_caches()


@pytest.fixture
def example(
    load_example: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    """The Django example, with test views added and :data:`OPTIONAL_PATHS` optional."""
    from django.urls import clear_url_caches

    monkeypatch.setenv("WX_OPTIONAL_PATHS", OPTIONAL_PATHS)
    module = load_example("django_app")  # configures Django: imports of its parts come after
    add_test_views(module)
    yield module
    clear_url_caches()


Answer = Tuple[int, Dict[str, str], Any]


class Caller:
    """Requests to the example under WSGI (``app``, through webtest) or ASGI (``asgi``,
    through httpx on an event loop of its own, run only while a request is in flight: the
    test's own ORM calls run outside it)."""

    def __init__(self, example: ModuleType, mode: str) -> None:
        self.mode = mode
        if mode == "wsgi":
            self.wsgi = webtest.TestApp(example.app)
        else:
            self.loop = asyncio.new_event_loop()
            transport = httpx.ASGITransport(app=example.asgi)
            self.client = httpx.AsyncClient(transport=transport, base_url="http://testserver")

    def get(self, path: str, headers: Dict[str, str]) -> Answer:
        if self.mode == "wsgi":
            return self._wsgi(self.wsgi.get(path, headers=headers, expect_errors=True))
        return self._asgi(self.client.get(path, headers=headers))

    def post_json(self, path: str, body: Any, headers: Dict[str, str]) -> Answer:
        if self.mode == "wsgi":
            sent = self.wsgi.post_json(path, body, headers=headers, expect_errors=True)
            return self._wsgi(sent)
        return self._asgi(self.client.post(path, json=body, headers=headers))

    @staticmethod
    def _wsgi(response: Any) -> Answer:
        body = response.json if response.content_type == "application/json" else None
        return response.status_int, dict(response.headers), body

    def _asgi(self, call: Any) -> Answer:
        reply = self.loop.run_until_complete(call)
        is_json = reply.headers.get("content-type", "").startswith("application/json")
        return reply.status_code, dict(reply.headers), reply.json() if is_json else None

    def log_in(self, fake: FakeWeChat, user: str, appid: str = "") -> str:
        code = fake.issue_code(user, appid=appid or None)
        headers = {"Referer": referer(appid)} if appid else {}
        status, _, body = self.post_json("/wx/login", {"code": code}, headers)
        assert status == 200, body
        token: str = body["3rd_session"]
        return token

    def close(self) -> None:
        if self.mode == "asgi":
            self.loop.run_until_complete(self.client.aclose())
            self.loop.close()


def referer(appid: str) -> str:
    """The Referer WeChat sets on every ``wx.request`` of the mini-program ``appid``."""
    return f"https://servicewechat.com/{appid}/0/page-frame.html"


@pytest.fixture(params=["wsgi", "asgi"])
def mode(request: pytest.FixtureRequest) -> str:
    """Django under WSGI or under ASGI."""
    return str(request.param)


@pytest.fixture
def caller(example: ModuleType, mode: str) -> Iterator[Caller]:
    """A :class:`Caller` on the example in ``mode``."""
    made = Caller(example, mode)
    yield made
    made.close()


@pytest.fixture
def logins() -> Iterator[List[Tuple[Any, Any]]]:
    """Every ``user_logged_in`` signal sent during the test: (user, request)."""
    from django.contrib.auth.signals import user_logged_in

    sent: List[Tuple[Any, Any]] = []

    def record(sender: Any, request: Any, user: Any, **_: Any) -> None:
        sent.append((user, request))

    user_logged_in.connect(record)
    yield sent
    user_logged_in.disconnect(record)


def wsgi_client(example: ModuleType) -> Any:
    return webtest.TestApp(example.app)


def log_in(client: Any, fake: FakeWeChat, user: str) -> str:
    response = client.post_json("/wx/login", {"code": fake.issue_code(user)})
    token: str = response.json["3rd_session"]
    return token


def test_login_creates_and_links_a_django_user(
    example: ModuleType, fake_wechat: FakeWeChat, logins: List[Tuple[Any, Any]]
) -> None:
    from django.contrib.auth import get_user_model

    from wxmiddleware.integrations.django.models import WxAccount

    client = wsgi_client(example)
    token = log_in(client, fake_wechat, "alice")
    openid = fake_wechat.openid_for("alice")
    account = WxAccount.objects.get(appid=fake_wechat.appid, openid=openid)
    assert account.unionid == fake_wechat.unionid_for("alice")
    assert account.user.get_username() == f"wx_{openid}"
    assert not account.user.has_usable_password()
    # user_logged_in fired with that user, and Django's own receiver set last_login.
    assert [user.pk for user, _ in logins] == [account.user.pk]
    assert get_user_model().objects.get(pk=account.user.pk).last_login is not None

    answer = client.get("/api/profile", headers={"3rd-session": token}).json
    assert answer == {"username": f"wx_{openid}", "openid": openid}

    # A second login of the same WeChat user is the same Django user.
    log_in(client, fake_wechat, "alice")
    assert WxAccount.objects.filter(openid=openid).count() == 1
    assert len(logins) == 2 and logins[1][0].pk == account.user.pk


def test_login_required_mixin_permissions_and_optional_paths(
    example: ModuleType, fake_wechat: FakeWeChat
) -> None:
    from django.contrib.auth.models import Permission

    from wxmiddleware.integrations.django.models import WxAccount

    client = wsgi_client(example)
    token = log_in(client, fake_wechat, "bob")
    headers = {"3rd-session": token}
    assert client.get("/api/mine", headers=headers).json["username"].startswith("wx_")

    # Permissions are Django's: none at first, then granted to the linked user.
    assert client.get("/api/accounts", headers=headers, expect_errors=True).status_int == 403
    user = WxAccount.objects.get(openid=fake_wechat.openid_for("bob")).user
    user.user_permissions.add(Permission.objects.get(codename="view_wxaccount"))
    assert client.get("/api/accounts", headers=headers).json == {"count": 1}

    # An optional path: anonymous without a token, the Django user with one.
    assert client.get("/feed").json == {"authenticated": False}
    assert client.get("/feed", headers=headers).json == {"authenticated": True}


@pytest.mark.parametrize("path", ["/api/profile", "/api/mine", "/api/secret"])
@pytest.mark.parametrize("token", [None, "not-a-live-token", "bad token!"])
def test_bad_tokens_get_the_middlewares_401(example: ModuleType, path: str, token: Any) -> None:
    """@login_required and LoginRequiredMixin never redirect to a login form: the middleware
    refuses first, with its JSON."""
    headers = {} if token is None else {"3rd-session": token}
    response = wsgi_client(example).get(path, headers=headers, expect_errors=True)
    assert_refused(response.status_int, dict(response.headers), response.json)


def test_a_store_that_is_down_answers_503(
    load_example: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("redis")
    monkeypatch.setenv("WX_SESSION_STORE", down_store_url())
    client = wsgi_client(load_example("django_app"))
    response = client.get("/api/profile", headers={"3rd-session": "a" * 43}, expect_errors=True)
    assert_refused(response.status_int, dict(response.headers), response.json, 503)


def test_asgi_mode_runs_async_with_the_same_users(
    example: ModuleType, fake_wechat: FakeWeChat, logins: List[Tuple[Any, Any]]
) -> None:
    httpx = pytest.importorskip("httpx")

    async def run() -> None:
        transport = httpx.ASGITransport(app=example.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            refused = await client.get("/api/profile")
            assert_refused(refused.status_code, dict(refused.headers), refused.json())

            code = fake_wechat.issue_code("carol")
            login = await client.post("/wx/login", json={"code": code})
            token = login.json()["3rd_session"]
            openid = fake_wechat.openid_for("carol")
            # The underscore form reaches the async middleware (it reads the ASGI headers).
            for header in ("3rd-session", "3rd_session"):
                profile = await client.get("/api/profile", headers={header: token})
                assert profile.json()["openid"] == openid
            feed = await client.get("/feed", headers={"3rd-session": token})
            assert feed.json() == {"authenticated": True}

    asyncio.run(run())
    assert len(logins) == 1


def test_the_middleware_takes_the_mode_of_its_chain(example: ModuleType) -> None:
    from asgiref.sync import iscoroutinefunction

    from wxmiddleware.integrations.django.middleware import WxLoginMiddleware

    async def async_view(request: Any) -> Any:
        raise AssertionError("not called")

    def sync_view(request: Any) -> Any:
        raise AssertionError("not called")

    assert iscoroutinefunction(WxLoginMiddleware(async_view))
    assert not iscoroutinefunction(WxLoginMiddleware(sync_view))


def test_request_auser_in_an_async_view(example: ModuleType, fake_wechat: FakeWeChat) -> None:
    httpx = pytest.importorskip("httpx")
    from django.http import HttpRequest, JsonResponse
    from django.urls import clear_url_caches, path

    async def whoami(request: HttpRequest) -> JsonResponse:
        user = await request.auser()
        return JsonResponse({"username": user.get_username()})

    example.urlpatterns.append(path("api/whoami", whoami))
    clear_url_caches()

    async def run() -> None:
        transport = httpx.ASGITransport(app=example.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            login = await client.post("/wx/login", json={"code": fake_wechat.issue_code("dan")})
            token = login.json()["3rd_session"]
            answer = await client.get("/api/whoami", headers={"3rd-session": token})
            assert answer.json() == {"username": f"wx_{fake_wechat.openid_for('dan')}"}

    asyncio.run(run())


def test_wx_login_required_serves_a_session(caller: Caller, fake_wechat: FakeWeChat) -> None:
    user = f"guarded-{caller.mode}"
    token = caller.log_in(fake_wechat, user)
    for path in WX_GUARDED:
        status, _, body = caller.get(path, {"3rd-session": token})
        assert status == 200, (path, body)
        assert body["username"] == f"wx_{fake_wechat.openid_for(user)}"


@pytest.mark.parametrize("path", WX_GUARDED)
@pytest.mark.parametrize("token", ["missing", "malformed", "expired"])
def test_wx_login_required_refuses_with_the_middlewares_401(
    caller: Caller,
    fake_wechat: FakeWeChat,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    token: str,
) -> None:
    """On an optional path the middleware lets these requests through (or refuses the
    malformed token itself); the views answer its 401 JSON, never a redirect."""
    headers: Dict[str, str] = {}
    if token == "malformed":
        headers = {"3rd-session": "bad token!"}
    elif token == "expired":
        headers = {"3rd-session": caller.log_in(fake_wechat, "expiring")}
        assert caller.get(path, headers)[0] == 200
        later = time.time() + 400 * 86400  # past the idle timeout and the absolute cap
        monkeypatch.setattr(time, "time", lambda: later)
    answer = caller.get(path, headers)
    assert_refused(*answer)
    if token == "expired":
        # Byte for byte the middleware's own answer where a session is required.
        assert answer[2] == caller.get("/api/profile", headers)[2]


def test_login_required_still_redirects_pages_on_optional_paths(caller: Caller) -> None:
    """Django's @login_required keeps its redirect to LOGIN_URL, for pages a browser shows."""
    from django.conf import settings

    status, headers, _ = caller.get("/open/login-required", {})
    location = {name.lower(): value for name, value in headers.items()}["location"]
    assert (status, location.split("?")[0]) == (302, settings.LOGIN_URL)


def test_wx_login_required_with_the_store_down(
    load_example: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """A token that cannot be checked is the middleware's 503, on WSGI and ASGI; a request
    without one needs no store: the views' 401."""
    from django.urls import clear_url_caches

    monkeypatch.setenv("WX_SESSION_STORE", down_store_url())
    monkeypatch.setenv("WX_OPTIONAL_PATHS", OPTIONAL_PATHS)
    module = load_example("django_app")
    add_test_views(module)
    made = Caller(module, mode)
    try:
        for path in WX_GUARDED:
            assert_refused(*made.get(path, {"3rd-session": "a" * 43}), 503)
            assert_refused(*made.get(path, {}))
    finally:
        made.close()
        clear_url_caches()


APP_B = "wx00000000000000b2"
SECRET_B = "secret-of-app-b-0123456789"


def test_several_apps_link_an_account_per_app(
    load_example: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    fake_wechat_env: FakeWeChat,
    mode: str,
) -> None:
    """Two mini-programs (WX_APPS) log the same person in: each app's account is linked
    under its own appid and openid, both to one Django user (the same unionid), and each
    app's token finds the user through its own account."""
    from django.urls import clear_url_caches

    from wxmiddleware.integrations.django.models import WxAccount

    fake = fake_wechat_env
    fake.add_app(APP_B, SECRET_B)
    monkeypatch.setenv("WX_APPS", f"{fake.appid}:{fake.secret},{APP_B}:{SECRET_B}")
    monkeypatch.setenv("WX_OPTIONAL_PATHS", OPTIONAL_PATHS)
    module = load_example("django_app")
    add_test_views(module)
    made = Caller(module, mode)
    person = f"two-apps-{mode}"
    expected = sorted([appid, fake.openid_for(person, appid)] for appid in (fake.appid, APP_B))
    try:
        tokens = {appid: made.log_in(fake, person, appid) for appid in (fake.appid, APP_B)}
        for appid, token in tokens.items():
            headers = {"3rd-session": token, "Referer": referer(appid)}
            status, _, body = made.get("/open/mixin", headers)
            assert status == 200, body
            assert (body["appid"], body["accounts"]) == (appid, expected)
    finally:
        made.close()
        clear_url_caches()
    accounts = WxAccount.objects.filter(unionid=fake.unionid_for(person))
    assert sorted([account.appid, account.openid] for account in accounts) == expected
    assert len({account.user_id for account in accounts}) == 1


# A project with the admin (it needs sessions, messages and templates, which the example
# leaves out), run in a process of its own: Django's settings are set once per process.
ADMIN_PROJECT = """
import django
from django.conf import settings

settings.configure(
    SECRET_KEY="test",
    ALLOWED_HOSTS=["testserver"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
        "django.contrib.sessions", "django.contrib.messages",
        "wxmiddleware.integrations.django",
    ],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "wxmiddleware.integrations.django.middleware.WxLoginMiddleware",
    ],
    AUTHENTICATION_BACKENDS=[
        "wxmiddleware.integrations.django.backends.WxSessionBackend",
        "django.contrib.auth.backends.ModelBackend",
    ],
    TEMPLATES=[{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": [
            "django.template.context_processors.request",
            "django.contrib.auth.context_processors.auth",
            "django.contrib.messages.context_processors.messages",
        ]},
    }],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    WXMIDDLEWARE={"public_paths": ["/admin/*"]},
)
django.setup()

from django.contrib import admin
from django.core.management import call_command
from django.test import Client
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
call_command("migrate", verbosity=0)

from django.contrib.auth.models import User
from webtest import TestApp
from django.core.wsgi import get_wsgi_application
from wxmiddleware.testing import FakeWeChat

code = FAKE_CODE
login = TestApp(get_wsgi_application()).post_json("/wx/login", {"code": code})
assert login.status_int == 200, login.text

staff = User.objects.create_superuser("admin", "admin@example.com", "pw")
browser = Client()
browser.force_login(staff)
page = browser.get("/admin/wxmiddleware/wxaccount/?q=OPENID")
assert page.status_code == 200, page.status_code
text = page.content.decode()
assert "OPENID" in text and "wx_OPENID" in text, text[:2000]
user_page = browser.get("/admin/auth/user/?q=wx_OPENID")
assert "wx_OPENID" in user_page.content.decode()
print("admin ok")
"""


def test_the_admin_lists_wechat_accounts_and_their_users(
    fake_wechat_env: FakeWeChat, tmp_path: Any
) -> None:
    """The app installs into a project with the admin: migrations run, the login's account
    and user show in the admin, whose browser session passes through a public path."""
    import os
    import subprocess
    import sys

    from .conftest import ROOT

    openid = fake_wechat_env.openid_for("erin")
    script = ADMIN_PROJECT.replace("FAKE_CODE", repr(fake_wechat_env.issue_code("erin")))
    script = script.replace("OPENID", openid)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "admin ok" in result.stdout
