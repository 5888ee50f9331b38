"""Every platform logs a user in the same way (issue 25): through both adapters and every
store, against the platform's exchange on the fake, with the same token, session keys and
environ/scope keys as WeChat."""

from __future__ import annotations

import json
from typing import Any, Callable, List

import pytest

from wxmiddleware.testing import FakeWeChat

from ..middleware.drivers import Driver, assert_error
from ..middleware.stubs import WSGI
from .support import PLATFORMS, add_app, config_for, log_in, login, me


def sessions_of(app: Driver, store: Any, openid: str) -> List[Any]:
    if app.name == WSGI:
        return list(store.sessions_for(openid))
    return list(app.portal.call(store.sessions_for, openid))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_user_logs_in_and_the_token_resolves(
    make_app: Callable[..., Driver],
    store: Any,
    fake_wechat: FakeWeChat,
    platform: str,
    adapter: str,
) -> None:
    one = add_app(fake_wechat, platform)
    app = make_app(store=store, config=config_for(fake_wechat, one))
    code = fake_wechat.platforms.issue_code(one.appid)
    first = login(app, code, one.appid)
    assert first.status == 200, first.body
    token = first.json()["3rd_session"]
    reply = me(app, token, one.appid)
    assert reply.status == 200, reply.body
    seen = reply.seen
    assert seen is not None and seen.session is not None
    platforms = fake_wechat.platforms
    assert seen.openid == platforms.openid_for("alice", one.appid)
    assert seen.unionid == platforms.unionid_for("alice", one.appid)
    assert seen.session.platform == seen.request["wxmiddleware.platform"] == platform
    assert seen.session.appid == seen.request["wxmiddleware.appid"] == one.appid
    if platform == "alipay":
        assert seen.session_key == ""  # Alipay has no session key
    else:
        assert seen.session_key == platforms.session_key_for("alice", one.appid)
    if adapter == WSGI:
        assert seen.request["REMOTE_USER"] == seen.openid
    else:
        assert seen.request["user"].platform == platform
    assert platforms.calls_to(platform) == 1
    assert fake_wechat.jscode2session_calls == 0
    # The same code sent again (a client's retry) gets the same session, no second call.
    again = login(app, code, one.appid)
    assert again.status == 200, again.body
    assert again.json()["3rd_session"] == token
    assert platforms.calls_to(platform) == 1
    app.close_store(store)


@pytest.mark.parametrize("platform", ["qq", "douyin", "baidu", "kuaishou"])
def test_the_session_key_stays_current_per_user_and_app(
    make_app: Callable[..., Driver], store: Any, fake_wechat: FakeWeChat, platform: str
) -> None:
    one = add_app(fake_wechat, platform)
    other = add_app(
        fake_wechat,
        platform,
        appid={
            "qq": "1110000002",
            "douyin": "tt00000000000000b2",
            "baidu": "BaiduAppKeyOfTheSecondApp0000002",
            "kuaishou": "ks100000000000000002",
        }[platform],
    )
    app = make_app(store=store, config=config_for(fake_wechat, one, other))
    first = log_in(app, fake_wechat, one, several=True)
    elsewhere = log_in(app, fake_wechat, other, several=True)
    key_elsewhere = fake_wechat.platforms.session_key_for("alice", other.appid)
    second = log_in(app, fake_wechat, one, several=True)
    current = fake_wechat.platforms.session_key_for("alice", one.appid)
    for token in (first, second):
        seen = me(app, token, one.appid, several=True).seen
        assert seen is not None and seen.session_key == current
    seen = me(app, elsewhere, other.appid, several=True).seen
    assert seen is not None and seen.session_key == key_elsewhere != current
    # Each token works only for its app.
    assert_error(me(app, first, other.appid, several=True), 401, "invalid_session")
    app.close_store(store)


def test_apps_of_every_platform_share_one_middleware(
    make_app: Callable[..., Driver], store: Any, fake_wechat: FakeWeChat
) -> None:
    apps = [add_app(fake_wechat, platform) for platform in PLATFORMS]
    app = make_app(store=store, config=config_for(fake_wechat, *apps, wechat=True))
    tokens = {one.platform: log_in(app, fake_wechat, one, several=True) for one in apps}
    wechat = app.post(
        "/wx/login",
        json={"code": fake_wechat.issue_code("alice")},
        headers=[("Referer", f"https://servicewechat.com/{fake_wechat.appid}/0/page-frame.html")],
    )
    assert wechat.status == 200, wechat.body
    for one in apps:
        seen = me(app, tokens[one.platform], one.appid, several=True).seen
        assert seen is not None and seen.request["wxmiddleware.platform"] == one.platform
        openid = fake_wechat.platforms.openid_for("alice", one.appid)
        assert len(sessions_of(app, store, openid)) == 1
    seen = me(app, wechat.json()["3rd_session"], fake_wechat.appid, several=True).seen
    assert seen is not None and seen.request["wxmiddleware.platform"] == "wechat"
    # Another platform's page as Referer names no app: the header does.
    douyin = apps[1]
    reply = app.get(
        "/api/me",
        headers=[
            ("3rd-session", tokens["douyin"]),
            ("Referer", "https://tmaservice.developer.toutiao.com/?appid=tt0123456789abcdef"),
            ("X-WX-Appid", douyin.appid),
        ],
    )
    assert reply.status == 200, reply.body
    app.close_store(store)


def test_douyin_sends_the_anonymous_code_to_its_exchange(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat
) -> None:
    one = add_app(fake_wechat, "douyin")
    app = make_app(config=config_for(fake_wechat, one))
    code = fake_wechat.platforms.issue_code(one.appid)
    anonymous = fake_wechat.platforms.issue_anonymous_code(one.appid)
    reply = login(app, code, one.appid, anonymous_code=anonymous)
    assert reply.status == 200, reply.body
    sent = json.loads(fake_wechat.platforms.calls[-1].body)
    assert sent == {
        "appid": one.appid,
        "secret": one.secret,
        "code": code,
        "anonymous_code": anonymous,
    }
    # A form body carries it too; a used anonymous code is Douyin's 40019, a 401.
    reply = app.post(
        "/wx/login",
        form={"code": fake_wechat.platforms.issue_code(one.appid), "anonymous_code": anonymous},
    )
    assert_error(reply, 401, "invalid_code")
    assert reply.json()["errcode"] == 40019
    reply = login(
        app, fake_wechat.platforms.issue_code(one.appid), one.appid, anonymous_code="x\x00"
    )
    assert_error(reply, 400, "bad_request")


def test_the_single_app_wechat_path_sends_no_other_platform_anything(
    app: Driver, fake_wechat: FakeWeChat
) -> None:
    token = app.login(fake_wechat)
    seen = app.me(token).seen
    assert seen is not None and seen.request["wxmiddleware.platform"] == "wechat"
    assert fake_wechat.platforms.calls == []
