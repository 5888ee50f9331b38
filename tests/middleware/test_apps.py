"""Several mini-programs on one backend, and third-party platform login (issue 22), through
both adapters and, where sessions are kept, every kind of store: memory, SQLite and Redis."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable, List, Optional, Tuple

import pytest

from wxmiddleware import AsyncWxApi, WxApi, WxConfig
from wxmiddleware._apps import WxApp
from wxmiddleware.errors import ConfigError
from wxmiddleware.session import SessionScope
from wxmiddleware.testing import FakeWeChat
from wxmiddleware.testing.model import WeChatModel
from wxmiddleware.wechat._paths import COMPONENT_JSCODE2SESSION_PATH, STABLE_TOKEN_PATH

from .drivers import Driver, Reply, app_config, assert_error
from .stubs import WSGI
from .test_session_keys import reset

# The fixture of every store (memory, SQLite, Redis) of the adapter's kind.
from .test_session_keys import store as store

APP_B = "wx00000000000000b2"
SECRET_B = "secret-of-app-b-0123456789"
APP_C = "wx00000000000000c3"  # logs in through the third-party platform
APP_D = "wx00000000000000d4"  # configured for the platform, but has not authorised it
COMPONENT = "wxcomponent0000001"
STORE_KEY = "store-key-for-apps-0123456789"


def referer(appid: str, version: str = "0") -> Tuple[str, str]:
    return ("Referer", f"https://servicewechat.com/{appid}/{version}/page-frame.html")


def two_apps(fake: FakeWeChat, **fields: Any) -> WxConfig:
    fake.add_app(APP_B, SECRET_B)
    apps = [WxApp(fake.appid, fake.secret), WxApp(APP_B, SECRET_B)]
    return app_config(fake, apps=apps, **fields)


def log_in(app: Driver, fake: FakeWeChat, appid: str, user: str = "alice") -> str:
    code = fake.issue_code(user, appid=appid)
    reply = app.post("/wx/login", json={"code": code}, headers=[referer(appid)])
    assert reply.status == 200, reply.body
    token: str = reply.json()["3rd_session"]
    return token


def me(app: Driver, token: str, *headers: Tuple[str, str]) -> Reply:
    return app.get("/api/me", headers=[("3rd-session", token), *headers])


def seen_in_app(app: Driver, token: str, appid: str) -> Any:
    reply = me(app, token, referer(appid))
    assert reply.status == 200, reply.body
    assert reply.seen is not None and reply.seen.session is not None
    return reply.seen


def test_two_apps_log_the_same_person_in_under_different_openids(
    make_app: Callable[..., Driver], store: Any, fake_wechat: FakeWeChat, adapter: str
) -> None:
    app = make_app(store=store, config=two_apps(fake_wechat))
    token_a = log_in(app, fake_wechat, fake_wechat.appid)
    token_b = log_in(app, fake_wechat, APP_B)
    seen_a = seen_in_app(app, token_a, fake_wechat.appid)
    seen_b = seen_in_app(app, token_b, APP_B)
    assert seen_a.openid == fake_wechat.openid_for("alice", fake_wechat.appid)
    assert seen_b.openid == fake_wechat.openid_for("alice", APP_B)
    assert seen_a.openid != seen_b.openid
    assert seen_a.unionid == seen_b.unionid  # one person across the open-platform account
    assert seen_a.session.appid == seen_a.request["wxmiddleware.appid"] == fake_wechat.appid
    assert seen_b.session.appid == seen_b.request["wxmiddleware.appid"] == APP_B
    if adapter != WSGI:
        assert seen_b.request["user"].appid == APP_B
    # X-WX-Appid names the app as the Referer does.
    assert me(app, token_b, ("X-WX-Appid", APP_B)).status == 200
    app.close_store(store)


def test_each_token_works_only_for_its_app(
    make_app: Callable[..., Driver], store: Any, fake_wechat: FakeWeChat
) -> None:
    app = make_app(store=store, config=two_apps(fake_wechat))
    token_a = log_in(app, fake_wechat, fake_wechat.appid)
    assert_error(me(app, token_a, referer(APP_B)), 401, "invalid_session")
    assert_error(me(app, token_a, ("X-WX-Appid", APP_B)), 401, "invalid_session")
    # A logout in the other app's name ends nothing.
    logout = app.post("/wx/logout", headers=[("3rd-session", token_a), referer(APP_B)])
    assert logout.status == 204
    assert me(app, token_a, referer(fake_wechat.appid)).status == 200
    logout = app.post("/wx/logout", headers=[("3rd-session", token_a), referer(fake_wechat.appid)])
    assert logout.status == 204
    assert_error(me(app, token_a, referer(fake_wechat.appid)), 401, "invalid_session")
    app.close_store(store)


def _same_openid_in_every_app(fake: FakeWeChat) -> None:
    # WeChat gives each app its own openid; this fake gives one to all of them, so that a
    # store that mixed up two apps' sessions of one openid could not hide it.
    fake.openid_for = lambda user, appid=None: WeChatModel.openid_for(fake, user)  # type: ignore[method-assign]


def test_a_users_session_key_update_and_reset_touch_only_that_apps_sessions(
    make_app: Callable[..., Driver], store: Any, fake_wechat: FakeWeChat, adapter: str
) -> None:
    _same_openid_in_every_app(fake_wechat)
    app = make_app(store=store, config=two_apps(fake_wechat))
    a1 = log_in(app, fake_wechat, fake_wechat.appid)
    b1 = log_in(app, fake_wechat, APP_B)
    key_b = fake_wechat.session_key_for("alice", APP_B)
    a2 = log_in(app, fake_wechat, fake_wechat.appid)
    key_a = fake_wechat.session_key_for("alice", fake_wechat.appid)
    assert key_a != key_b
    assert seen_in_app(app, a1, fake_wechat.appid).session_key == key_a
    assert seen_in_app(app, a2, fake_wechat.appid).session_key == key_a
    assert seen_in_app(app, b1, APP_B).session_key == key_b
    # A new login in app B, then a reset of the user's key there, reach B's sessions only.
    b2 = log_in(app, fake_wechat, APP_B)
    key_b2 = fake_wechat.session_key_for("alice", APP_B)
    assert seen_in_app(app, b1, APP_B).session_key == key_b2
    after = reset(app, adapter, seen_in_app(app, b2, APP_B).session)
    assert after.session_key not in (key_b, key_b2, key_a)
    assert seen_in_app(app, b1, APP_B).session_key == after.session_key
    for token in (a1, a2):
        assert seen_in_app(app, token, fake_wechat.appid).session_key == key_a
    app.close_store(store)


def test_the_cap_counts_a_users_sessions_per_app(
    make_app: Callable[..., Driver], store: Any, fake_wechat: FakeWeChat
) -> None:
    _same_openid_in_every_app(fake_wechat)
    app = make_app(store=store, config=two_apps(fake_wechat, max_sessions_per_user=2))
    b_tokens = [log_in(app, fake_wechat, APP_B) for _ in range(2)]
    a_tokens = [log_in(app, fake_wechat, fake_wechat.appid) for _ in range(3)]
    assert_error(me(app, a_tokens[0], referer(fake_wechat.appid)), 401, "invalid_session")
    for token in a_tokens[1:]:
        assert me(app, token, referer(fake_wechat.appid)).status == 200
    for token in b_tokens:
        assert me(app, token, referer(APP_B)).status == 200
    app.close_store(store)


def test_revoke_all_ends_one_apps_sessions_of_the_person(
    make_app: Callable[..., Driver], store: Any, fake_wechat: FakeWeChat, adapter: str
) -> None:
    _same_openid_in_every_app(fake_wechat)
    config = two_apps(fake_wechat)
    app = make_app(store=store, config=config)
    a_tokens = [log_in(app, fake_wechat, fake_wechat.appid) for _ in range(2)]
    b_tokens = [log_in(app, fake_wechat, APP_B) for _ in range(2)]
    openid = fake_wechat.openid_for("alice", fake_wechat.appid)
    assert fake_wechat.openid_for("alice", APP_B) == openid
    scope_a = SessionScope.for_config(config.for_app(fake_wechat.appid))
    if adapter == WSGI:
        ended = store.revoke_all(openid, scope_a)
    else:
        ended = app.portal.call(store.revoke_all, openid, scope_a)  # type: ignore[attr-defined]
    assert ended == 2
    for token in a_tokens:
        assert_error(me(app, token, referer(fake_wechat.appid)), 401, "invalid_session")
    for token in b_tokens:
        assert me(app, token, referer(APP_B)).status == 200
    # A new login in app A leaves app B's sessions as they were, and B's key in them.
    key_b = fake_wechat.session_key_for("alice", APP_B)
    a_again = log_in(app, fake_wechat, fake_wechat.appid)
    assert seen_in_app(app, a_again, fake_wechat.appid).openid == openid
    assert {seen_in_app(app, token, APP_B).session_key for token in b_tokens} == {key_b}
    app.close_store(store)


BAD_APP_HEADERS: List[Tuple[str, List[Tuple[str, str]], str]] = [
    ("not a mini-program page", [("Referer", "https://example.com/index.html")], "Referer"),
    ("servicewechat.com, not a page", [("Referer", "https://servicewechat.com/")], "Referer"),
    ("appid with other characters", [referer("wx-bad!")], "Referer"),
    ("header appid with other characters", [("X-WX-Appid", "wx$bad")], "X-WX-Appid"),
    (
        "two different apps",
        [referer(WeChatModel.DEFAULT_APPID), ("X-WX-Appid", APP_B)],
        "X-WX-Appid",
    ),
    ("an app not configured", [("X-WX-Appid", "wx0000000000000099")], "X-WX-Appid"),
    ("an app not configured, by Referer", [referer("wx0000000000000099")], "Referer"),
    ("no app named", [], "X-WX-Appid"),
]


@pytest.mark.parametrize(
    ("headers", "named"),
    [case[1:] for case in BAD_APP_HEADERS],
    ids=[case[0] for case in BAD_APP_HEADERS],
)
def test_a_login_naming_no_valid_app_is_400_and_spends_nothing(
    make_app: Callable[..., Driver],
    fake_wechat: FakeWeChat,
    headers: List[Tuple[str, str]],
    named: str,
) -> None:
    app = make_app(config=two_apps(fake_wechat))
    code = fake_wechat.issue_code("alice")
    reply = app.post("/wx/login", json={"code": code}, headers=headers)
    assert_error(reply, 400, "bad_request")
    assert named in reply.json()["message"]
    assert fake_wechat.jscode2session_calls == 0
    # Nothing was claimed or stored: the same code logs in once the app is named.
    again = app.post("/wx/login", json={"code": code}, headers=[referer(fake_wechat.appid)])
    assert again.status == 200, again.body
    assert fake_wechat.jscode2session_calls == 1


@pytest.mark.parametrize(
    ("headers", "named"),
    [case[1:] for case in BAD_APP_HEADERS],
    ids=[case[0] for case in BAD_APP_HEADERS],
)
def test_a_request_naming_no_valid_app_is_400(
    make_app: Callable[..., Driver],
    fake_wechat: FakeWeChat,
    headers: List[Tuple[str, str]],
    named: str,
) -> None:
    app = make_app(config=two_apps(fake_wechat))
    token = log_in(app, fake_wechat, fake_wechat.appid)
    reply = me(app, token, *headers)
    assert_error(reply, 400, "bad_request")
    assert reply.seen is None
    logout = app.post("/wx/logout", headers=[("3rd-session", token), *headers])
    assert_error(logout, 400, "bad_request")
    assert me(app, token, referer(fake_wechat.appid)).status == 200


def test_one_app_reads_neither_header(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat
) -> None:
    app = make_app()
    assert app.middleware._pipeline.apps is None
    foreign = [("Referer", "https://example.com/"), ("X-WX-Appid", "wx$bad")]
    reply = app.post("/wx/login", json={"code": fake_wechat.issue_code()}, headers=foreign)
    assert reply.status == 200, reply.body
    seen = me(app, reply.json()["3rd_session"], *foreign).seen
    assert seen is not None and seen.request["wxmiddleware.appid"] == fake_wechat.appid


def test_an_anonymous_optional_path_names_no_app(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat
) -> None:
    app = make_app(config=two_apps(fake_wechat))
    reply = app.get("/feed")
    assert reply.status == 200
    assert reply.seen is not None and reply.seen.request["wxmiddleware.appid"] is None


# -- the third-party platform ----------------------------------------------------------------


def component_config(fake: FakeWeChat, token_source: Callable[[str], Any]) -> WxConfig:
    apps = [WxApp(fake.appid, fake.secret), WxApp(APP_C), WxApp(APP_D)]
    return app_config(
        fake,
        apps=apps,
        component_appid=COMPONENT,
        component_token=token_source,
        store_key=STORE_KEY,
    )


def token_source(adapter: str, token: str, asked: List[str]) -> Callable[[str], Any]:
    """A sync ``component_token`` for WSGI, an async one for ASGI."""

    def sync(component_appid: str) -> str:
        asked.append(component_appid)
        return token

    async def asynchronous(component_appid: str) -> str:
        return sync(component_appid)

    return sync if adapter == WSGI else asynchronous


def test_component_login_against_the_fake(
    make_app: Callable[..., Driver],
    store: Any,
    fake_wechat: FakeWeChat,
    adapter: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="wxmiddleware")
    component_token = fake_wechat.add_component(COMPONENT, [APP_C])
    asked: List[str] = []
    app = make_app(
        store=store,
        config=component_config(fake_wechat, token_source(adapter, component_token, asked)),
    )
    token = log_in(app, fake_wechat, APP_C)
    assert asked == [COMPONENT]
    seen = seen_in_app(app, token, APP_C)
    assert seen.openid == fake_wechat.openid_for("alice", APP_C)
    assert seen.session.appid == APP_C
    assert seen.session_key == fake_wechat.session_key_for("alice", APP_C)
    call = [c for c in fake_wechat.calls if c.path == COMPONENT_JSCODE2SESSION_PATH][-1]
    sent = dict(call.query)
    assert sent["appid"] == APP_C and sent["component_appid"] == COMPONENT
    assert sent["grant_type"] == "authorization_code"
    assert fake_wechat.jscode2session_calls == 0
    # The app with a secret still logs in itself.
    assert (
        me(app, log_in(app, fake_wechat, fake_wechat.appid), referer(fake_wechat.appid)).status
        == 200
    )
    assert component_token not in caplog.text and seen.session_key not in caplog.text
    app.close_store(store)


def test_an_app_that_has_not_authorised_the_platform_is_a_502_naming_61003(
    make_app: Callable[..., Driver],
    fake_wechat: FakeWeChat,
    adapter: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="wxmiddleware")
    component_token = fake_wechat.add_component(COMPONENT, [APP_C])
    app = make_app(config=component_config(fake_wechat, token_source(adapter, component_token, [])))
    code = fake_wechat.issue_code("alice", appid=APP_D)
    reply = app.post("/wx/login", json={"code": code}, headers=[referer(APP_D)])
    assert_error(reply, 502, "upstream_error")
    assert reply.json().get("errcode") in (61003, None)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("61003" in r.getMessage() and "authorised" in r.getMessage() for r in errors)
    assert component_token not in caplog.text and component_token not in reply.text
    assert STORE_KEY not in caplog.text


def test_a_failing_component_token_is_a_502_naming_it(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    fake_wechat.add_component(COMPONENT, [APP_C])

    def broken(component_appid: str) -> Optional[str]:
        raise RuntimeError("ticket store down: secret-ticket-value")

    app = make_app(config=component_config(fake_wechat, broken))
    code = fake_wechat.issue_code("alice", appid=APP_C)
    reply = app.post("/wx/login", json={"code": code}, headers=[referer(APP_C)])
    assert_error(reply, 502, "upstream_error")
    assert "component_token failed: RuntimeError" in caplog.text
    assert "secret-ticket-value" not in caplog.text and "secret-ticket-value" not in reply.text
    assert fake_wechat.calls_to(COMPONENT_JSCODE2SESSION_PATH) == 0


def test_an_async_component_token_under_wsgi_is_a_502(
    fake_wechat: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    from .drivers import driver_factory

    token = fake_wechat.add_component(COMPONENT, [APP_C])

    async def asynchronous(component_appid: str) -> str:
        return token

    with driver_factory(WSGI, fake_wechat) as make:
        app = make(config=component_config(fake_wechat, asynchronous))
        code = fake_wechat.issue_code("alice", appid=APP_C)
        reply = app.post("/wx/login", json={"code": code}, headers=[referer(APP_C)])
    assert_error(reply, 502, "upstream_error")
    assert "plain function" in caplog.text


# -- access tokens ---------------------------------------------------------------------------


def test_access_tokens_are_fetched_and_kept_per_app(
    store: Any, fake_wechat: FakeWeChat, adapter: str
) -> None:
    """WxApi over the WSGI side's stores, AsyncWxApi over the ASGI side's (memory, SQLite,
    Redis): one token per app, kept in the store that every worker shares."""
    config = two_apps(fake_wechat)
    loop = asyncio.new_event_loop()

    def run(result: Any) -> Any:
        return result if adapter == WSGI else loop.run_until_complete(result)

    async def async_api() -> AsyncWxApi:
        return AsyncWxApi(config, store)  # its HTTP client belongs to the running loop

    def worker_api() -> Any:
        return WxApi(config, store) if adapter == WSGI else run(async_api())

    api, other_worker = worker_api(), worker_api()
    try:
        token_a = run(api.access_token(fake_wechat.appid))
        token_b = run(api.access_token(APP_B))
        assert token_a != token_b
        assert run(api.access_token(fake_wechat.appid)) == token_a  # kept, not fetched again
        assert run(other_worker.access_token(APP_B)) == token_b  # shared through the store
        fetched = [json.loads(c.body) for c in fake_wechat.calls if c.path == STABLE_TOKEN_PATH]
        assert sorted(body["appid"] for body in fetched) == sorted([fake_wechat.appid, APP_B])
        for appid, token in ((fake_wechat.appid, token_a), (APP_B, token_b)):
            record = run(store.get_value(f"wxmiddleware:access_token:{appid}"))
            assert json.loads(record)["token"] == token
        with pytest.raises(ConfigError, match="name the app"):
            run(api.access_token())
        with pytest.raises(ConfigError, match="not configured"):
            run(api.access_token("wx0000000000000099"))
    finally:
        for each in (api, other_worker):
            run(each.close() if adapter == WSGI else each.aclose())
        run(store.close() if adapter == WSGI else store.aclose())
        loop.close()


def test_a_platform_app_has_no_access_token_of_ours(fake_wechat: FakeWeChat) -> None:
    from wxmiddleware import MemoryStore

    api = WxApi(component_config(fake_wechat, lambda appid: "t"), MemoryStore())
    try:
        with pytest.raises(ConfigError, match="third-party platform"):
            api.access_token(APP_C)
    finally:
        api.close()
